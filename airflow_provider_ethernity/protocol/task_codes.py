"""Task result codes written by the enclave into the signed result (the official runner's table)."""

from __future__ import annotations

from enum import IntEnum


class TaskCode(IntEnum):
    """A task's result code. 0 is success; 37, 39 and 40 blame the node operator (the task is resubmitted)."""

    SUCCESS = 0
    SYSTEM_ERROR = 1
    KEY_ERROR = 2
    SYNTAX_WARNING = 3
    BASE_EXCEPTION = 4
    PAYLOAD_NOT_DEFINED = 5
    PAYLOAD_CHECKSUM_ERROR = 6
    INPUT_CHECKSUM_ERROR = 7
    EXECVE = 8
    SIGNATURE_ERROR = 20
    SYNTAX_ERROR = 21
    MEMORY_ERROR = 22
    NAME_ERROR = 23
    TYPE_ERROR = 24
    VALUE_ERROR = 25
    INDEX_ERROR = 26
    ATTRIBUTE_ERROR = 27
    IMPORT_ERROR = 28
    OS_ERROR = 29
    ZERO_DIVISION_ERROR = 30
    RUNTIME_ERROR = 31
    CONFIG_ERROR = 32
    EXECUTION_TIMEOUT = 33
    ESR_GAS_LIMIT_EXCEEDED = 34
    SECURITY_VIOLATION = 35
    ESR_NONCE_VIOLATION = 36
    ESR_RELAY_TIMEOUT = 37
    ESR_COMMIT_LIMIT_EXCEEDED = 38
    SESSION_RELAY_FAULT = 39
    CAS_ATTESTATION_FAULT = 40

    @property
    def is_operator_fault(self) -> bool:
        """Whether the code blames the node operator, not the task."""
        return self in OPERATOR_FAULT_CODES


#: {code: name} of every known code.
TASK_CODE_NAMES: dict[int, str] = {int(code): code.name for code in TaskCode}
SUCCESS = int(TaskCode.SUCCESS)
#: Codes that blame the node operator, not the task: the request is resubmitted.
OPERATOR_FAULT_CODES: frozenset[int] = frozenset(
    int(code) for code in (TaskCode.ESR_RELAY_TIMEOUT, TaskCode.SESSION_RELAY_FAULT, TaskCode.CAS_ATTESTATION_FAULT)
)


def task_code_name(code: int) -> str:
    """The name of a task code; unknown codes are named ``UNKNOWN_<code>``."""
    return TASK_CODE_NAMES.get(int(code), f"UNKNOWN_{int(code)}")


def is_operator_fault(code: int) -> bool:
    """Whether ``code`` (a known or unknown code) blames the node operator."""
    return int(code) in OPERATOR_FAULT_CODES
