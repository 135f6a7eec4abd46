"""Task result codes written by the enclave into the signed result (the official runner's table)."""

from __future__ import annotations

TASK_CODE_NAMES: dict[int, str] = {
    0: "SUCCESS",
    1: "SYSTEM_ERROR",
    2: "KEY_ERROR",
    3: "SYNTAX_WARNING",
    4: "BASE_EXCEPTION",
    5: "PAYLOAD_NOT_DEFINED",
    6: "PAYLOAD_CHECKSUM_ERROR",
    7: "INPUT_CHECKSUM_ERROR",
    8: "EXECVE",
    20: "SIGNATURE_ERROR",
    21: "SYNTAX_ERROR",
    22: "MEMORY_ERROR",
    23: "NAME_ERROR",
    24: "TYPE_ERROR",
    25: "VALUE_ERROR",
    26: "INDEX_ERROR",
    27: "ATTRIBUTE_ERROR",
    28: "IMPORT_ERROR",
    29: "OS_ERROR",
    30: "ZERO_DIVISION_ERROR",
    31: "RUNTIME_ERROR",
    32: "CONFIG_ERROR",
    33: "EXECUTION_TIMEOUT",
    34: "ESR_GAS_LIMIT_EXCEEDED",
    35: "SECURITY_VIOLATION",
    36: "ESR_NONCE_VIOLATION",
    37: "ESR_RELAY_TIMEOUT",
    38: "ESR_COMMIT_LIMIT_EXCEEDED",
    39: "SESSION_RELAY_FAULT",
    40: "CAS_ATTESTATION_FAULT",
}
SUCCESS = 0
#: Codes that blame the node operator, not the task: the request is resubmitted.
OPERATOR_FAULT_CODES: frozenset[int] = frozenset({37, 39, 40})


def task_code_name(code: int) -> str:
    """The name of a task code; unknown codes are named ``UNKNOWN_<code>``."""
    return TASK_CODE_NAMES.get(int(code), f"UNKNOWN_{int(code)}")


def is_operator_fault(code: int) -> bool:
    return int(code) in OPERATOR_FAULT_CODES
