"""What to say when ``rpc_url`` answers, but not JSON-RPC: an HTML page (a web server, a login or
maintenance page, a wrong path), JSON that is not JSON-RPC, or an HTTP error status.

web3 raises these raw: ``JSONDecodeError("Could not decode '<html>…'")``, ``BadResponseFormat``,
``requests.HTTPError("404 Client Error: Not Found for url: https://host/v3/<key>")``. Their texts quote the
response body or the full URL (an API key in its path), so the messages built here never include an
exception's text: only the field name, the URL as :func:`~airflow_provider_ethernity.protocol.errors.shown_url`
shows it, the HTTP status and what was wrong.

Call sites (the client's RPC wrapper, the async reader, ``test_connection``)::

    except Exception as exc:
        if is_transient(exc):
            raise TransientError(...) from None
        error = rpc_failure_error(exc, settings.rpc_url)
        if error is not None:
            raise error from None
        raise
"""

from __future__ import annotations

import json
from http import HTTPStatus

from airflow_provider_ethernity.protocol.errors import ConfigurationError, shown_url


def _status(exc: BaseException) -> int | None:
    """The HTTP status of a requests/httpx/aiohttp status error, else None."""
    status = getattr(exc, "status", None)  # aiohttp.ClientResponseError
    if isinstance(status, int):
        return status
    response = getattr(exc, "response", None)  # requests.HTTPError, httpx.HTTPStatusError
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def _is_status_error(exc: BaseException) -> bool:
    import requests

    if isinstance(exc, requests.HTTPError):
        return True
    try:
        import aiohttp
    except ImportError:  # pragma: no cover - aiohttp ships with web3
        return False
    return isinstance(exc, aiohttp.ClientResponseError) and not isinstance(exc, aiohttp.ContentTypeError)


def rpc_answer_problem(exc: BaseException) -> str | None:
    """What was wrong with the RPC's answer, when ``exc`` says it was not JSON-RPC; None for other errors
    (network faults, node errors such as a revert, programming errors)."""
    from web3.exceptions import BadResponseFormat

    if isinstance(exc, json.JSONDecodeError):
        return "the answer is not JSON (an HTML page?)"
    try:
        import aiohttp

        if isinstance(exc, aiohttp.ContentTypeError):
            return "the answer is not JSON (an HTML page?)"
    except ImportError:  # pragma: no cover - aiohttp ships with web3
        pass
    if isinstance(exc, BadResponseFormat):
        return "the answer is JSON but not a JSON-RPC 2.0 response"
    if _is_status_error(exc):
        status = _status(exc)
        if status is None:
            return "the answer is an HTTP error"
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "error"
        hint = " (check the API key or credentials in rpc_url)" if status in (401, 403) else ""
        return f"the answer is HTTP {status} {reason}{hint}"
    return None


def is_rpc_answer_failure(exc: BaseException) -> bool:
    """Whether ``exc`` means ``rpc_url`` answered something other than JSON-RPC (not retried: a wrong URL)."""
    return rpc_answer_problem(exc) is not None


def describe_rpc_failure(exc: BaseException, rpc_url: str) -> str:
    """A message naming ``rpc_url`` for a failed RPC call, safe to show: it never contains the exception's
    text (which may quote the response or the URL's key), only the exception's class for unknown faults."""
    where = f"rpc_url={shown_url(rpc_url)!r}"
    problem = rpc_answer_problem(exc)
    if problem is None:
        return f"the RPC call to {where} failed: {type(exc).__name__}"
    return (
        f"{where} did not answer JSON-RPC: {problem}; allowed the URL of an Ethereum JSON-RPC endpoint "
        "(HTTP POST answering JSON-RPC 2.0, e.g. http://127.0.0.1:8545)"
    )


def rpc_failure_error(exc: BaseException, rpc_url: str) -> ConfigurationError | None:
    """A :class:`ConfigurationError` to raise (``from None``) instead of ``exc`` when ``rpc_url`` did not
    answer JSON-RPC; None when ``exc`` is another kind of failure (let it propagate or classify it)."""
    if not is_rpc_answer_failure(exc):
        return None
    return ConfigurationError(describe_rpc_failure(exc, rpc_url))
