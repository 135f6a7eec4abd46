"""The operator's parameter helpers: how an input dataset becomes the enclave's string, and the checks."""

from __future__ import annotations

from typing import Any


def is_template(value: Any) -> bool:
    """Whether a string is only known after rendering (a Jinja expression)."""
    return isinstance(value, str) and "{{" in value


def rendered_containers(value: Any, path: str) -> list[tuple[str, str]]:
    """Strings nested in ``value`` that are the text of a Python list or dict (a rendered template)."""
    import ast

    found: list[tuple[str, str]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    for key, item in items:
        where = f"{path}[{key!r}]"
        if isinstance(item, (dict, list, tuple)):
            found += rendered_containers(item, where)
        elif isinstance(item, str) and item.strip()[:1] in ("[", "{"):
            try:
                parsed = ast.literal_eval(item.strip())
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                continue
            if isinstance(parsed, (list, dict)) and "'" in item:  # JSON text uses double quotes: Python's repr
                found.append((where, item))
    return found


def encode_input(value: Any) -> str | None:
    """The input dataset as the string the enclave reads: strings as they are, anything else as JSON."""
    if value is None or isinstance(value, str):
        return value
    import json
    from collections.abc import Mapping, Sequence

    def plain(obj: Any) -> Any:  # lazy XCom sequences of mapped tasks become lists
        if isinstance(obj, Mapping):
            return dict(obj)
        if isinstance(obj, Sequence) and not isinstance(obj, (str, bytes)):
            return list(obj)
        raise TypeError(f"a {type(obj).__name__} is not JSON serializable")

    try:
        return json.dumps(value, default=plain)
    except TypeError as exc:
        raise ValueError(f"input_data: {exc}") from None


def check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{name}={value!r} is invalid: allowed a positive number of seconds")


def warn_native_rendering(operator: Any, input_data: Any) -> None:
    """A Jinja expression inside an ``input_data`` dict or list renders to text (``"['a', 'b']"``) unless the
    DAG renders native objects: say so, since the task would silently compute on the string."""
    if not isinstance(input_data, (dict, list, tuple)):
        return
    try:
        native = bool(operator.dag.render_template_as_native_obj)
    except Exception:  # an operator outside a DAG
        native = False
    if native:
        return
    for path, text in rendered_containers(input_data, "input_data"):
        operator.log.warning(
            "%s is the string %.60r: a template inside a dict or list rendered to text; set "
            "render_template_as_native_obj=True on the DAG to pass the %s itself",
            path,
            text,
            "list" if text.lstrip().startswith("[") else "object",
        )


def check_static_parameters(
    *,
    poll_interval: Any,
    order_wait_timeout: Any,
    completion_timeout: Any,
    max_resubmits: Any,
    resources: Any,
    node_address: Any,
    trustedzone: Any,
    securelock: Any,
) -> None:
    """The operator's parameters that are not templates, checked at DAG parse time (errors name the parameter
    and the allowed values); templated ones are checked when the task runs, before anything is sent."""
    from airflow_provider_ethernity.protocol.metadata import normalize_node_address
    from airflow_provider_ethernity.protocol.resources import Resources
    from airflow_provider_ethernity.protocol.settings import image_name

    check_positive("poll_interval", poll_interval)
    check_positive("order_wait_timeout", order_wait_timeout)
    if completion_timeout is not None:
        check_positive("completion_timeout", completion_timeout)
    if not isinstance(max_resubmits, int) or isinstance(max_resubmits, bool) or not 0 <= max_resubmits <= 10:
        raise ValueError(f"max_resubmits={max_resubmits!r} is invalid: allowed an integer from 0 to 10")
    if resources is not None and not isinstance(resources, str):
        Resources.from_value(resources)
    if node_address and not is_template(node_address):
        normalize_node_address(node_address)
    for name, value in (("trustedzone", trustedzone), ("securelock", securelock)):
        if value and not is_template(value):
            image_name(name, value)
