"""Talking to the Hub, for `publish` and `render-card --repo`: the token, requests that give up on a
silent server, bounded retries of transient failures, and error messages that say what to do.

What huggingface_hub 2.4 already retries (5 times, exponential back-off, Retry-After honoured): the
requests it sends through `http_backoff` — preupload, the LFS batch, upload and verify, tree listings,
downloads. It does not retry create_repo, model_info, paths-info, create_branch, the README metadata
check or the commit itself: `with_retries` retries those, by repeating a whole step. That is safe for
the steps hubcard retries: each one reads the repo again and re-plans before it commits, and a
commit is atomic on the Hub, so a retry after a failure (even one whose answer was lost after the
commit was made) finds the repo as it is and commits at most once. (A pull request is opened anew
by each commit: see `with_retries`'s `safe_to_repeat`.)

Uploads take one of two paths, chosen by huggingface_hub: Xet storage whenever `hf_xet` is installed
(a dependency of huggingface_hub, so: by default), unless HF_HUB_DISABLE_XET=1 selects the legacy LFS
path. hf_xet retries transient failures itself (for minutes with its defaults: HF_XET_CLIENT_RETRY_*
set how long), then raises builtin exceptions (ConnectionError, PermissionError, RuntimeError...)
that say nothing of the Hub: `XetError` carries them, and hubcard does not repeat the upload on top.

The token is never part of a message: every message goes through `secrets.scrub`.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import httpx2
from huggingface_hub import constants, set_client_factory
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError
from huggingface_hub.utils import _http

from hubcard.errors import PublishError
from hubcard.secrets import current_token, scrub

logger = logging.getLogger(__name__)

T = TypeVar("T")

TIMEOUT_VARIABLE = "HUBCARD_HUB_TIMEOUT"
DEFAULT_TIMEOUT = 60.0
RETRY_WAITS = (1.0, 2.0)
"""Seconds to wait before the second and the third (last) attempt of a step."""
MAX_RETRY_AFTER = 60
"""A Retry-After longer than this is not waited for: the error says how long to wait instead."""
TRANSIENT_STATUSES = {408, 412, 429, 500, 502, 503, 504}
"""412: the branch moved between reading it and committing (parentCommit): read it again."""
XET_FALLBACK = "HF_HUB_DISABLE_XET=1"
"""Set in the environment, it makes huggingface_hub upload over plain HTTP (the LFS protocol) instead of Xet."""
TOKEN_HELP = "Set HF_TOKEN to a token with write access (create one at https://huggingface.co/settings/tokens) or run `hf auth login`"


class XetError(Exception):
    """An upload through Xet storage failed: `cause` is what hf_xet raised (after its own retries)."""

    def __init__(self, cause: BaseException):
        super().__init__(f"{type(cause).__name__}: {short_reason(cause)}")
        self.cause = cause


HUB_ERRORS = (httpx2.HTTPError, LocalEntryNotFoundError, RuntimeError, ValueError, XetError)
"""What huggingface_hub raises when the Hub fails a request: HTTP and transport errors, a download that
found neither the Hub nor a cached copy, a failed LFS upload (a RuntimeError, after its own retries),
the Hub's refusal of a card's metadata (a ValueError); and hubcard's XetError for the Xet path."""
XET_STATUS = re.compile(r"\((\d{3})[ )]")
"""The HTTP status in an hf_xet error message ("HTTP status server error (503 Service Unavailable)")."""


def xet_in_use() -> bool:
    """Whether huggingface_hub uploads through Xet storage: hf_xet is installed and HF_HUB_DISABLE_XET is
    not set (huggingface_hub's own rule, read from its constants: the environment as it was imported)."""
    return not constants.HF_HUB_DISABLE_XET and importlib.util.find_spec("hf_xet") is not None


def upload_failure(error: Exception) -> Exception:
    """What an upload (huggingface_hub's preupload) raised, as hubcard handles it: an XetError for the
    non-HTTP errors of the Xet path (hf_xet's exceptions are builtin ones: OSError and its
    ConnectionError/PermissionError, RuntimeError, ValueError), else the error itself."""
    if xet_in_use() and isinstance(error, (OSError, RuntimeError, ValueError)) and not isinstance(error, httpx2.HTTPError):
        return XetError(error)
    return error


def require_token(action: str) -> str:
    """The token huggingface_hub would use; a PublishError saying how to get one if there is none."""
    token = current_token()
    if not token:
        raise PublishError(f"No Hugging Face token: {action} needs one. {TOKEN_HELP}.")
    return token


def request_timeout() -> float:
    """Seconds without an answer after which a request to the Hub fails (HUBCARD_HUB_TIMEOUT)."""
    value = os.environ.get(TIMEOUT_VARIABLE)
    try:
        return float(value) if value else DEFAULT_TIMEOUT
    except ValueError:
        raise PublishError(f"{TIMEOUT_VARIABLE} must be a number of seconds, got {value!r}") from None


@contextmanager
def patient_client() -> Iterator[None]:
    """huggingface_hub's HTTP client, made to give up on a request that gets no answer for
    `request_timeout()` seconds (by default it waits forever); the client it had is restored afterwards."""
    seconds = request_timeout()
    previous = _http._GLOBAL_CLIENT_FACTORY  # huggingface_hub has a setter for it, but no getter

    def client() -> httpx2.Client:
        session = previous()
        session.timeout = httpx2.Timeout(seconds)
        return session

    set_client_factory(client)
    try:
        yield
    finally:
        set_client_factory(previous)


def with_retries(step: Callable[[], T], *, what: str, safe_to_repeat: bool = True) -> T:
    """`step()`, repeated after a transient failure (see the module's docstring) at most
    len(RETRY_WAITS) times; the last failure is raised.

    Without `safe_to_repeat` (a step that opens a pull request, which a repeat after a lost answer would
    open twice), only errors the Hub answered are retried: it applied nothing then.
    """
    for wait in (*RETRY_WAITS, None):
        try:
            return step()
        except httpx2.HTTPError as error:
            pause = _retry_pause(error, wait if safe_to_repeat or isinstance(error, HfHubHTTPError) else None)
            if pause is None:
                raise
            logger.warning("%s failed (%s); trying again in %.0f s", what, scrub(short_reason(error)), pause)
            time.sleep(pause)
    raise AssertionError("unreachable")


def hub_error(error: Exception, *, repo_id: str, rerun: str) -> PublishError:
    """What went wrong, in words a user can act on; `rerun` is the command that finishes the job."""
    return PublishError(scrub(_explain(error, repo_id, rerun)))


def _retry_pause(error: httpx2.HTTPError, wait: float | None) -> float | None:
    """Seconds to wait before trying again after `error`, or None: do not retry."""
    if wait is None:
        return None
    if isinstance(error, HfHubHTTPError):
        if error.response is None or error.response.status_code not in TRANSIENT_STATUSES:
            return None
        retry_after = _retry_after(error)
        if retry_after is not None:
            return float(retry_after) if retry_after <= MAX_RETRY_AFTER else None
        return wait
    return wait if isinstance(error, (httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError)) else None


def _retry_after(error: HfHubHTTPError) -> int | None:
    value = (error.response.headers.get("Retry-After") or "").strip() if error.response is not None else ""
    return int(value) if value.isdigit() else None


def _explain(error: Exception, repo_id: str, rerun: str) -> str:
    again = f"Run `{rerun}` again to finish: files the Hub already has are not sent twice."
    endpoint = constants.ENDPOINT
    if isinstance(error, XetError):
        status = XET_STATUS.search(str(error))
        why = (
            f"Xet storage refused it (HTTP {status.group(1)})"
            if status and status.group(1).startswith("4")
            else "Xet storage could not be reached or kept failing, also after hf_xet's own retries"
        )
        return (
            f"The upload through Xet storage failed ({error}): {why}. Nothing was committed. Run `{rerun}` again "
            f"to finish; if Xet keeps failing, upload over plain HTTP instead: `{XET_FALLBACK} {rerun}`."
        )
    if isinstance(error, RuntimeError) and isinstance(error.__cause__, Exception):
        # huggingface_hub wraps a failed LFS upload (retried 5 times already): "Error while uploading 'x'".
        return f"{error} Nothing was committed. {_explain(error.__cause__, repo_id, rerun)}"
    if isinstance(error, LocalEntryNotFoundError) and isinstance(error.__cause__, Exception):
        return _explain(error.__cause__, repo_id, rerun)
    if isinstance(error, RepositoryNotFoundError):
        return (
            f"{repo_id} was not found on the Hub, or this token cannot see it (a private repo of another "
            "account): check the repo id and the token."
        )
    if isinstance(error, RevisionNotFoundError):
        return f"{repo_id} has no such revision: {_server_message(error)}. Check hub.revision."
    if isinstance(error, HfHubHTTPError) and error.response is not None:
        return _explain_status(error, error.response.status_code, repo_id, rerun, again)
    if isinstance(error, httpx2.TimeoutException):
        return (
            f"The Hub at {endpoint} did not answer within {request_timeout():g} s. Check your connection "
            f"(or raise {TIMEOUT_VARIABLE}). {again}"
        )
    if isinstance(error, httpx2.TransportError):
        return f"The connection to the Hub at {endpoint} failed ({short_reason(error)}). Check your network. {again}"
    if isinstance(error, ValueError) and "metadata" in str(error):
        return f"The Hub refused the card's metadata: {error} Fix its front matter (`hubcard lint-card` lists the problems)."
    return f"The Hub request for {repo_id} failed: {short_reason(error)}. {again}"


def _explain_status(error: HfHubHTTPError, status: int, repo_id: str, rerun: str, again: str) -> str:
    said = _server_message(error)
    if status == 401:
        return (
            f"The Hub refused the token (401 Unauthorized: {said}): it is invalid, expired or revoked. "
            f"{TOKEN_HELP}, then run `{rerun}` again."
        )
    if status == 403:
        namespace, _, name = repo_id.partition("/")
        return (
            f"This token may not write to {repo_id} (403 Forbidden: {said}). Publish to your own namespace "
            f"(hub.repo_id: YOUR-NAME/{name}) or open a pull request (hub.create_pr, or --pr for a card), "
            f"or use a token with write access to {namespace!r}."
        )
    if status == 429:
        retry_after = _retry_after(error)
        wait = f"wait {retry_after} s" if retry_after is not None else "wait a few minutes"
        return f"The Hub is rate-limiting this account (429 Too Many Requests): {wait}, then run `{rerun}` again."
    if status == 412:
        return f"The branch of {repo_id} kept changing while hubcard published to it (412: {said}). {again}"
    if status >= 500:
        return f"The Hub failed ({status}: {said}), also when asked again. Wait a little. {again}"
    return f"The Hub refused the request ({status}: {said}). {again}"


def _server_message(error: HfHubHTTPError) -> str:
    """What the Hub said (also where huggingface_hub replaced the error by its own, as whoami does)."""
    response = error.response
    said = response.headers.get("X-Error-Message") or response.reason_phrase if response is not None else ""
    return error.server_message or said or "no details"


def short_reason(error: BaseException) -> str:
    """The first line of an error's message (huggingface_hub's carry request ids and URLs after it);
    for an answer of the Hub, its status and what the Hub said (the first line may be just a request id)."""
    if isinstance(error, HfHubHTTPError) and error.response is not None:
        return f"{error.response.status_code}: {_server_message(error)}"
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
