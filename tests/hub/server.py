"""A Hugging Face Hub-compatible HTTP server on 127.0.0.1 for the real huggingface_hub client.

It answers the requests huggingface_hub 2.4 makes to publish and download a model repo (with Xet
off: HF_HUB_DISABLE_XET=1; with Xet on, it hands out Xet write tokens but serves no Xet storage), to
list a user's models and to use the discussions and pull requests of a repo, and is strict where the
Hub is: a Bearer token for every write, writes only to the token user's namespace or an organization
where the user may write, private repos invisible (404) to anyone else, card metadata checked
(validate-yaml and every commit of a README.md), LFS uploads checked against their sha256 and size,
binary files refused outside LFS, a commit refused when its parentCommit is not the branch head.
Errors carry the X-Error-Code / X-Error-Message headers from
which huggingface_hub raises RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError...

Tests reach it through :class:`HubServer` (see tests/hub/README.md): users and tokens, the repos with
their commits and files, the bytes received per kind of request, and faults to inject.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode

import yaml

from tests.hub.state import (
    LFS_POINTER,
    Blob,
    Commit,
    CommitRejected,
    Discussion,
    Fault,
    FileAdd,
    FileDelete,
    HubState,
    Org,
    OrgRole,
    Repo,
    RequestRecord,
    Role,
    Token,
    comment_event,
    date_text,
    event,
    git_blob_oid,
)

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf")
LFS_THRESHOLD = 10 * 1000 * 1000
LANGUAGE_CODE = re.compile(r"[a-z]{2,3}")
REPO_ID = re.compile(r"(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*")
LICENSES = frozenset(
    """
    apache-2.0 mit openrail bigscience-openrail-m creativeml-openrail-m bigscience-bloom-rail-1.0 bigcode-openrail-m
    afl-3.0 artistic-2.0 bsl-1.0 bsd bsd-2-clause bsd-3-clause bsd-3-clause-clear c-uda cc cc0-1.0 cc-by-2.0 cc-by-2.5
    cc-by-3.0 cc-by-4.0 cc-by-sa-3.0 cc-by-sa-4.0 cc-by-nc-2.0 cc-by-nc-3.0 cc-by-nc-4.0 cc-by-nd-4.0 cc-by-nc-nd-3.0
    cc-by-nc-nd-4.0 cc-by-nc-sa-2.0 cc-by-nc-sa-3.0 cc-by-nc-sa-4.0 cdla-sharing-1.0 cdla-permissive-1.0
    cdla-permissive-2.0 wtfpl ecl-2.0 epl-1.0 epl-2.0 etalab-2.0 eupl-1.1 eupl-1.2 agpl-3.0 gfdl gpl gpl-2.0 gpl-3.0 lgpl
    lgpl-2.1 lgpl-3.0 isc h-research intel-research lppl-1.3c ms-pl apple-ascl apple-amlr mpl-2.0 odc-by odbl openrail++
    osl-3.0 postgresql ofl-1.1 ncsa unlicense zlib pddl lgpl-lr deepfloyd-if-license fair-noncommercial-research-license
    llama2 llama3 llama3.1 llama3.2 llama3.3 llama4 gemma unknown other
    """.split()
)
"""The Hub's license ids (its "Licenses" documentation page)."""
FRONT_MATTER = re.compile(r"^(\s*---[\r\n]+)([\S\s]*?)([\r\n]+---(\r\n|\n|$))")
INVALID_TOKEN = "Invalid credentials in Authorization header"
KINDS = (
    "whoami", "create_repo", "delete_repo", "repo_info", "preupload", "lfs_batch", "lfs_upload", "lfs_verify",
    "commit", "validate_yaml", "tree", "paths_info", "refs", "commits", "branch", "resolve", "xet_token", "xet_cas",
    "list_models", "discussions", "discussion", "create_discussion", "discussion_change",
)  # fmt: skip
WRITE_KINDS = (
    "create_repo", "delete_repo", "preupload", "lfs_batch", "lfs_upload", "lfs_verify", "commit", "branch",
    "create_discussion", "discussion_change",
)  # fmt: skip
"""The kinds of request that change (or ask to change) something on the Hub; the others only read."""
PAGE_SIZE = 50
"""Models per page of `GET /api/models` (the rest through the Link header), discussions per page."""


class HubError(Exception):
    """An error answer: the status, the message (X-Error-Message and JSON body) and the X-Error-Code."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None, **fields: Any):
        super().__init__(message)
        self.status, self.message, self.code, self.headers, self.fields = status, message, code, headers or {}, fields


@dataclass
class Request:
    method: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes
    token: Token | None

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def flag(self, name: str) -> bool:
        return (self.param(name) or "").lower() in ("1", "true")

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except ValueError:
            raise HubError(400, "the request body is not valid JSON") from None


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return cls(status, json.dumps(value).encode(), {"Content-Type": "application/json", **(headers or {})})


@dataclass(frozen=True)
class Route:
    kind: str
    handler: Callable[[HubServer, Request, list[str]], Response]
    arguments: list[str]


class HubServer:
    """The loopback Hub: bound to a free port on 127.0.0.1 when created, serving once started."""

    def __init__(self, root: Path | None = None):
        self.state = HubState(root or Path(tempfile.mkdtemp(prefix="loopback-hub-")))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.hub = self  # type: ignore[attr-defined]
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.xet_storage: str | None = None
        """The Xet storage (CAS) URL that Xet write tokens name; None: the loopback Hub's /_xet (503 to everything)."""
        self._thread: threading.Thread | None = None

    def start(self) -> HubServer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, name="loopback-hub", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self.state.released.set()
        self._server.shutdown()
        self._server.server_close()

    # --- what tests set up ------------------------------------------------------------------------

    def add_user(
        self, name: str, token: str | None = None, *, role: Role = "write", scopes: dict[str, tuple[str, ...]] | None = None
    ) -> str:
        """Register `name` with a token (generated unless given); returns the token. A `fineGrained`
        token may do what its `scopes` say (entity -> permissions, see state.Token)."""
        with self.state.lock:
            return self.state.add_user(name, token, role, scopes)

    def add_org(self, name: str, members: dict[str, OrgRole], *, private_by_default: bool = False) -> Org:
        """An organization whose `members` (user -> role) may read its private repos; `write` and
        `admin` members may write to its repos, `contributor`s may create new ones."""
        with self.state.lock:
            org = self.state.orgs[name] = Org(name, dict(members), private_by_default)
            return org

    def create_repo(self, repo_id: str, *, private: bool = False) -> Repo:
        """A repo owned by its namespace, with the Hub's initial commit (.gitattributes)."""
        with self.state.lock:
            return self.state.create_repo(repo_id, repo_id.split("/")[0], private)

    def commit_files(self, repo_id: str, files: dict[str, bytes], title: str = "Push with git", date: datetime | None = None) -> Commit:
        """Commit `files` to main directly, as a `git push` would: no metadata check (tests set up repos
        with what the API would refuse, such as a README whose front matter is broken). `date`: the
        commit's date (default now), as a push of a commit made earlier brings it."""
        with self.state.lock:
            repo = self._repo(repo_id)
            operations: list[FileAdd | FileDelete] = []
            for path, content in files.items():
                sha256 = self.state.store(content)
                lfs = _needs_lfs(path, len(content))
                if lfs:
                    repo.lfs_objects.add(sha256)
                pointer = LFS_POINTER.format(oid=sha256, size=len(content)).encode()
                operations.append(FileAdd(path, sha256, len(content), lfs, git_blob_oid(pointer if lfs else content)))
            made, _ = self.state.commit(
                repo, "main", operations, title=title, description="", author=repo.owner, parent_commit=None, create_pr=False, date=date
            )
            return made

    def fail(
        self,
        kind: str,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        drop: bool = False,
        hang: float | None = None,
        after: bool = False,
        times: int | None = 1,
    ) -> Fault:
        """Make the next `times` requests of `kind` (one of KINDS; None: until clear_faults) fail.

        `status`: answer it (with `headers`, e.g. {"Retry-After": "1"}) instead of handling the request;
        `drop`: close the connection without an answer, halfway through the request body (an LFS
        upload cut mid-transfer); `hang`: hold the request that many seconds (or until reset), then drop
        it. With `after`, the request is handled first (a commit is made) and only the answer fails.
        The returned Fault's `triggered` event is set when a request that hit it has been recorded.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown request kind {kind!r}: one of {', '.join(KINDS)}")
        fault = Fault(kind, status, dict(headers or {}), drop, hang, after, times)
        with self.state.lock:
            self.state.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.state.lock:
            self.state.faults.clear()

    def reset(self) -> None:
        """Forget users, repos, faults and statistics (stored objects stay on disk, unreachable)."""
        with self.state.lock:
            self.state.reset()

    # --- what tests inspect -----------------------------------------------------------------------

    def repo(self, repo_id: str) -> Repo | None:
        return self.state.repos.get(repo_id)

    def commits(self, repo_id: str, revision: str = "main") -> list[Commit]:
        """The history of `revision`, newest first (the Hub's initial commit last)."""
        return self._repo(repo_id).history(revision)

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """Every file of the repo at `revision` with its content."""
        commit = self._repo(repo_id).resolve(revision)
        if commit is None:
            raise KeyError(f"{repo_id} has no revision {revision!r}")
        return {path: self.state.read(blob) for path, blob in sorted(commit.files.items())}

    def stored_objects(self) -> list[Path]:
        """Every file content the server keeps on disk (uploads and regular files of commits)."""
        return sorted(path for path in (self.state.root / "objects").rglob("*") if path.is_file())

    def requests(self, kind: str | None = None) -> list[RequestRecord]:
        with self.state.lock:
            return [record for record in self.state.requests if kind is None or record.kind == kind]

    def writes(self, since: int = 0) -> list[RequestRecord]:
        """The requests of WRITE_KINDS among those received after the first `since` (a `len(requests())`
        taken earlier): what changed, or asked to change, something on the Hub."""
        return [record for record in self.requests()[since:] if record.kind in WRITE_KINDS]

    def bytes_received(self, kind: str | None = None) -> int:
        """Request body bytes received for requests of `kind` (all kinds if None), dropped ones included."""
        return sum(record.body_bytes for record in self.requests(kind))

    def _repo(self, repo_id: str) -> Repo:
        repo = self.repo(repo_id)
        if repo is None:
            raise KeyError(f"no repo {repo_id} on the loopback Hub")
        return repo

    # --- access control ---------------------------------------------------------------------------

    def readable(self, repo_id: str, token: Token | None) -> Repo:
        repo = self.state.repos.get(repo_id)
        if repo is None or (repo.private and (token is None or not self._member(token.user, repo.owner))):
            raise HubError(401 if token is None else 404, "Repository not found", "RepoNotFound")
        return repo

    def writable(self, repo_id: str, token: Token | None, *, pull_request: bool = False, revision: str | None = None) -> Repo:
        """The repo, if `token` may write to it (or, for a pull request, read it; for a commit to
        `revision` refs/pr/N, be that pull request's author)."""
        if token is None:
            raise HubError(401, f"You must be authenticated to write to {repo_id}")
        repo = self.readable(repo_id, token)
        if pull_request or _pull_request_author(repo, revision) == token.user:
            if token.role == "read":
                raise HubError(403, "This token has read access only: a pull request needs a token with the write role")
            return repo
        self.check_write(token, repo.owner, repo)
        return repo

    def check_write(self, token: Token, namespace: str, repo: Repo | None = None) -> None:
        """Refuse (403) unless `token` may write to `repo` in `namespace` (or, with no repo, create one
        there): the user's own namespace or an organization where the user has the write or admin
        role (contributor: to create repos and write to those they created), with a write token or a
        fine-grained token whose scope for the namespace or the repo holds `repo.write`."""
        repo_id = repo.repo_id if repo else None
        where = repo_id or f'the namespace "{namespace}"'
        if token.role == "read":
            raise HubError(403, "This token has read access only: writing needs a token with the write role")
        if token.role == "fineGrained" and not any("repo.write" in token.scopes.get(entity, ()) for entity in (namespace, repo_id) if entity):
            raise HubError(403, f"This fine-grained token has no write permission (repo.write) on {where}")
        org = self.state.orgs.get(namespace)
        role = org.members.get(token.user) if org else None
        contributes = role == "contributor" and (repo is None or repo.creator == token.user)
        if namespace != token.user and role not in ("admin", "write") and not contributes:
            raise HubError(403, f"You don't have the rights to write to {where}: it belongs to {namespace}")

    def _member(self, user: str, namespace: str) -> bool:
        """Whether `user` is `namespace` or a member of the organization `namespace`."""
        org = self.state.orgs.get(namespace)
        return user == namespace or (org is not None and user in org.members)

    def commit_at(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit


# --- the endpoints -----------------------------------------------------------------------------------


def whoami(hub: HubServer, request: Request, _: list[str]) -> Response:
    if request.token is None:
        raise HubError(401, INVALID_TOKEN)
    token = request.token
    access: dict[str, Any] = {"displayName": "loopback", "role": token.role}
    if token.role == "fineGrained":
        scoped = [{"entity": _entity(hub, name), "permissions": list(permissions)} for name, permissions in token.scopes.items()]
        access["fineGrained"] = {"canReadGatedRepos": False, "global": [], "scoped": scoped}
    orgs = [
        {"type": "org", "name": org.name, "fullname": org.name, "roleInOrg": org.members[token.user]}
        for org in hub.state.orgs.values()
        if token.user in org.members
    ]
    return Response.json(
        {
            "type": "user",
            "id": token.user,
            "name": token.user,
            "fullname": token.user,
            "orgs": orgs,
            "auth": {"type": "access_token", "accessToken": access},
        }
    )


def _entity(hub: HubServer, name: str) -> dict[str, str]:
    kind = "model" if "/" in name else "org" if name in hub.state.orgs else "user"
    return {"_id": hashlib.sha1(name.encode()).hexdigest()[:24], "type": kind, "name": name}


def create_repo(hub: HubServer, request: Request, _: list[str]) -> Response:
    payload = request.json()
    if payload.get("type") not in (None, "model"):
        raise HubError(400, "the loopback Hub holds model repos only")
    if request.token is None:
        raise HubError(401, "You must be authenticated to create a repo")
    namespace = payload.get("organization") or request.token.user
    repo_id = f"{namespace}/{payload.get('name')}"
    hub.check_write(request.token, namespace)
    url = f"{hub.endpoint}/{repo_id}"
    if repo_id in hub.state.repos:
        raise HubError(409, "You already created this model repo", url=url)
    asked = payload.get("visibility") or {True: "private", False: "public"}.get(payload.get("private"))
    org = hub.state.orgs.get(namespace)
    private = asked == "private" if asked else org is not None and org.private_by_default
    hub.state.create_repo(repo_id, namespace, private, request.token.user)
    return Response.json({"url": url, "name": repo_id, "id": uuid.uuid4().hex})


def delete_repo(hub: HubServer, request: Request, _: list[str]) -> Response:
    payload = request.json()
    repo_id = f"{payload.get('organization') or (request.token.user if request.token else '')}/{payload.get('name')}"
    hub.writable(repo_id, request.token)
    del hub.state.repos[repo_id]
    return Response.json({})


def repo_info(hub: HubServer, request: Request, arguments: list[str]) -> Response:
    repo_id, revision = arguments[0], arguments[1] if len(arguments) > 1 else "main"
    repo = hub.readable(repo_id, request.token)
    commit = hub.commit_at(repo, revision)
    with_blobs = request.flag("blobs")
    siblings = [_sibling(path, blob, with_blobs) for path, blob in sorted(commit.files.items())]
    return Response.json(
        {
            "_id": repo_id,
            "id": repo_id,
            "author": repo.owner,
            "sha": commit.oid,
            "private": repo.private,
            "disabled": False,
            "gated": False,
            "lastModified": date_text(commit.date),
            "createdAt": date_text(repo.created_at),
            "tags": [],
            "siblings": siblings,
        }
    )


def preupload(hub: HubServer, request: Request, arguments: list[str]) -> Response:
    repo_id, revision = arguments
    repo = hub.writable(repo_id, request.token, pull_request=request.flag("create_pr"), revision=revision)
    commit = hub.commit_at(repo, revision)
    answers = []
    for entry in request.json().get("files", []):
        path, size = entry["path"], int(entry["size"])
        existing = commit.files.get(path)
        answers.append(
            {
                "path": path,
                "uploadMode": "lfs" if _needs_lfs(path, size) else "regular",
                "shouldIgnore": False,
                "oid": (existing.sha256 if existing.lfs else existing.git_oid) if existing else None,
            }
        )
    return Response.json({"files": answers, "commitOid": commit.oid})


def lfs_batch(hub: HubServer, request: Request, arguments: list[str]) -> Response:
    repo_id = arguments[0]
    payload = request.json()
    branch = (payload.get("ref") or {}).get("name")
    repo = hub.writable(repo_id, request.token, pull_request=branch is None, revision=branch)
    if payload.get("operation") != "upload" or payload.get("hash_algo", "sha256") != "sha256":
        raise HubError(400, "the loopback Hub takes sha256 LFS uploads only")
    if "basic" not in payload.get("transfers", ["basic"]):
        raise HubError(400, "the loopback Hub speaks the basic LFS transfer only")
    objects = []
    for entry in payload.get("objects", []):
        oid, size = entry["oid"], int(entry["size"])
        if not re.fullmatch(r"[0-9a-f]{64}", oid):
            objects.append({"oid": oid, "size": size, "error": {"code": 422, "message": "oid is not a sha256"}})
            continue
        answer: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
        if oid not in repo.lfs_objects:
            upload_id = secrets.token_urlsafe(16)
            hub.state.uploads[upload_id] = (repo_id, oid, size)
            answer["actions"] = {
                "upload": {"href": f"{hub.endpoint}/_lfs/{upload_id}"},
                "verify": {"href": f"{hub.endpoint}/{repo_id}.git/info/lfs/objects/verify"},
            }
        objects.append(answer)
    return Response.json({"transfer": "basic", "objects": objects}, headers={"Content-Type": "application/vnd.git-lfs+json"})


def lfs_upload(hub: HubServer, request: Request, arguments: list[str]) -> Response:
    """The PUT to a signed upload URL: no token, the URL is the authorization (as with S3)."""
    upload = hub.state.uploads.get(arguments[0])
    if upload is None:
        raise HubError(403, "Request has expired or the upload URL is not valid")
    repo_id, oid, size = upload
    if len(request.body) != size:
        raise HubError(400, f"size mismatch: announced {size} bytes, received {len(request.body)}")
    if hashlib.sha256(request.body).hexdigest() != oid:
        raise HubError(400, "sha256 mismatch: the uploaded content does not match its oid")
    hub.state.store(request.body)
    repo = hub.state.repos.get(repo_id)
    if repo is not None:
        repo.lfs_objects.add(oid)
    del hub.state.uploads[arguments[0]]
    return Response(200, headers={"ETag": f'"{oid}"'})


def lfs_verify(hub: HubServer, request: Request, arguments: list[str]) -> Response:
    repo = hub.writable(arguments[0], request.token, pull_request=True)
    payload = request.json()
    oid, size = payload.get("oid", ""), payload.get("size")
    path = hub.state.object_path(oid) if re.fullmatch(r"[0-9a-f]{64}", oid) else None
    if oid not in repo.lfs_objects or path is None or path.stat().st_size != size:
        raise HubError(404, f"LFS object {oid} of {size} bytes was not uploaded")
    return Response.json({"message": "Object verified"})


def commit(hub: HubServer, request: Request, arguments: list[str]) -> Response:
    repo_id, revision = arguments
    create_pr = request.flag("create_pr")
    repo = hub.writable(repo_id, request.token, pull_request=create_pr, revision=revision)
    header, operations = _commit_operations(hub, request.body)
    if not header.get("summary"):
        raise HubError(400, "the commit summary (title) is empty")
    card = next((operation for operation in operations if isinstance(operation, FileAdd) and operation.path == "README.md"), None)
    errors = card_metadata_errors(hub.state.object_path(card.sha256).read_text(encoding="utf-8", errors="replace")) if card else []
    if errors:
        raise HubError(400, "Invalid metadata in README.md: " + "; ".join(errors))
    try:
        made, number = hub.state.commit(
            repo,
            revision,
            operations,
            title=header["summary"],
            description=header.get("description", ""),
            author=request.token.user if request.token else "",
            parent_commit=header.get("parentCommit"),
            create_pr=create_pr,
        )
    except CommitRejected as rejected:
        raise HubError(rejected.status, rejected.message, rejected.code) from None
    answer = {"success": True, "commitOid": made.oid, "commitUrl": f"{hub.endpoint}/{repo_id}/commit/{made.oid}", "hookOutput": ""}
    if number is not None:
        answer["pullRequestUrl"] = f"{hub.endpoint}/{repo_id}/discussions/{number}"
    return Response.json(answer)


def xet_write_token(hub: HubServer, request: Request, arguments: list[str]) -> Response:
    """A Xet write token for the repo, as the Hub answers it (JSON for hf_xet, headers for
    huggingface_hub); its `casUrl` is the loopback Hub's /_xet, which serves no Xet storage."""
    repo_id, _revision = arguments
    hub.writable(repo_id, request.token, pull_request=request.flag("create_pr"))
    token, expires, cas = secrets.token_urlsafe(24), int(time.time()) + 3600, hub.xet_storage or f"{hub.endpoint}/_xet"
    headers = {"X-Xet-Cas-Url": cas, "X-Xet-Access-Token": token, "X-Xet-Token-Expiration": str(expires)}
    return Response.json({"accessToken": token, "exp": expires, "casUrl": cas}, headers=headers)


def xet_cas(hub: HubServer, request: Request, arguments: list[str]) -> Response:
    """Xet storage (the CAS server) is not emulated: every request to it is answered 503, as an
    unreachable Xet store would fail a user's upload on the real Hub."""
    raise HubError(503, "the loopback Hub serves no Xet storage")


def validate_yaml(hub: HubServer, request: Request, _: list[str]) -> Response:
    """The Hub's card check (huggingface_hub's ModelCard.validate and HfApi's pre-commit check call it):
    400 with the problems (plain text when the client asks for text/plain, else JSON `errors`)."""
    errors = card_metadata_errors(request.json().get("content", ""))
    if not errors:
        return Response.json({"errors": [], "warnings": []})
    if "text/plain" in (request.headers.get("Accept") or ""):
        return Response(400, "\n".join(errors).encode(), {"Content-Type": "text/plain"})
    return Response.json({"errors": [{"message": error} for error in errors], "warnings": []}, status=400)


def card_metadata_errors(content: str) -> list[str]:
    """What the loopback Hub refuses in a card's YAML front matter (see tests/hub/README.md): YAML that
    does not parse to a mapping, a license that is not one of the Hub's license ids, a language that is
    not an ISO 639 code, a base_model or data set that is not a repo id (a local path), and a model-index
    without the structure the Hub reads (name; results with task.type, dataset.type and dataset.name,
    metrics with type and value)."""
    match = FRONT_MATTER.match(content)
    try:
        metadata = yaml.safe_load(match.group(2)) if match else None
    except yaml.YAMLError as error:
        return [f"Invalid YAML in the metadata: {error}"]
    if metadata is None:
        return []
    if not isinstance(metadata, dict):
        return ["The metadata is not a mapping of keys"]
    errors = []
    license = metadata.get("license")
    if license is not None and license not in LICENSES:
        errors.append(f'"license" must be one of the Hub\'s license ids (e.g. "apache-2.0", "mit", "other"), got {license!r}')
    for language in _as_list(metadata.get("language")):
        if not isinstance(language, str) or not LANGUAGE_CODE.fullmatch(language):
            errors.append(f'"language" must be ISO 639-1, 639-2 or 639-3 codes (e.g. "en", "fra"), got {language!r}')
    for key, kind, where in (("base_model", "model", "models"), ("datasets", "dataset", "datasets")):
        for number, value in enumerate(_as_list(metadata.get(key))):
            if not isinstance(value, str) or not REPO_ID.fullmatch(value):
                errors.append(f'"{key}[{number}]" with value "{value}" is not valid. Use a {kind} id from https://hf.co/{where}.')
    if "model-index" in metadata:
        errors += [f'"model-index"{where}: {problem}' for where, problem in _model_index_problems(metadata["model-index"])]
    return errors


def _as_list(value: Any) -> list[Any]:
    return [] if value is None else value if isinstance(value, list) else [value]


def _model_index_problems(index: Any) -> list[tuple[str, str]]:
    if not isinstance(index, list):
        return [("", "must be a list of models")]
    problems = []
    for number, model in enumerate(index):
        where = f"[{number}]"
        if not isinstance(model, dict) or not isinstance(model.get("name"), str):
            problems.append((where, "each model needs a name"))
            continue
        results = model.get("results")
        if not isinstance(results, list):
            problems.append((f"{where}.results", "must be a list"))
            continue
        for position, result in enumerate(results):
            at = f"{where}.results[{position}]"
            task, dataset, metrics = (result.get(key) if isinstance(result, dict) else None for key in ("task", "dataset", "metrics"))
            if not isinstance(task, dict) or not isinstance(task.get("type"), str):
                problems.append((f"{at}.task", "needs a type"))
            if not isinstance(dataset, dict) or not all(isinstance(dataset.get(key), str) for key in ("type", "name")):
                problems.append((f"{at}.dataset", "needs a type and a name"))
            if not isinstance(metrics, list) or not metrics:
                problems.append((f"{at}.metrics", "must be a non-empty list"))
                continue
            for index_of, metric in enumerate(metrics):
                if not isinstance(metric, dict) or not isinstance(metric.get("type"), str) or "value" not in metric:
                    problems.append((f"{at}.metrics[{index_of}]", "needs a type and a value"))
    return problems


def tree(hub: HubServer, request: Request, arguments: list[str]) -> Response:
    repo_id, revision, *path = arguments
    commit = hub.commit_at(hub.readable(repo_id, request.token), revision)
    prefix = "/".join(path)
    entries = _entries(commit)
    if prefix and prefix not in entries:
        raise HubError(404, f"{prefix} does not exist at {revision}", "EntryNotFound")
    start = f"{prefix}/" if prefix else ""
    depth = start.count("/")
    listed = [
        entry
        for name, entry in entries.items()
        if name.startswith(start) and name != prefix and (request.flag("recursive") or name.count("/") == depth)
    ]
    return Response.json(listed)


def paths_info(hub: HubServer, request: Request, arguments: list[str]) -> Response:
    repo_id, revision = arguments
    commit = hub.commit_at(hub.readable(repo_id, request.token), revision)
    entries = _entries(commit)
    paths = parse_qs(request.body.decode()).get("paths", [])
    return Response.json([entries[path] for path in paths if path in entries])


def refs(hub: HubServer, request: Request, arguments: list[str]) -> Response:
    repo = hub.readable(arguments[0], request.token)
    answer: dict[str, Any] = {
        "branches": [{"name": name, "ref": f"refs/heads/{name}", "targetCommit": oid} for name, oid in sorted(repo.branches.items())],
        "converts": [],
        "tags": [],
    }
    if request.flag("include_prs"):
        answer["pullRequests"] = [
            {"name": f"refs/pr/{n}", "ref": f"refs/pr/{n}", "targetCommit": oid} for n, oid in sorted(repo.pull_requests.items())
        ]
    return Response.json(answer)


def commits(hub: HubServer, request: Request, arguments: list[str]) -> Response:
    repo_id, revision = arguments
    repo = hub.readable(repo_id, request.token)
    hub.commit_at(repo, revision)
    return Response.json(
        [
            {"id": c.oid, "title": c.title, "message": c.message, "authors": [{"user": c.author}], "date": date_text(c.date)}
            for c in repo.history(revision)
        ]
    )


def branch(hub: HubServer, request: Request, arguments: list[str]) -> Response:
    repo_id, name = arguments
    repo = hub.writable(repo_id, request.token)
    if request.method == "DELETE":
        if repo.branches.pop(name, None) is None:
            raise HubError(404, f"Invalid rev id: {name}", "RevisionNotFound")
        return Response.json({})
    if name in repo.branches:
        raise HubError(409, "Reference already exists")
    if name.startswith("refs/") or not re.fullmatch(r"[\w./-]+", name):
        raise HubError(400, f"Invalid reference for a branch: {name}")
    repo.branches[name] = hub.commit_at(repo, request.json().get("startingPoint") or "main").oid
    return Response.json({})


def resolve(hub: HubServer, request: Request, arguments: list[str]) -> Response:
    repo_id, revision, *path = arguments
    repo = hub.readable(repo_id, request.token)
    commit = hub.commit_at(repo, revision)
    blob = commit.files.get("/".join(path))
    if blob is None:
        raise HubError(404, "Entry not found", "EntryNotFound", headers={"X-Repo-Commit": commit.oid})
    headers = {"X-Repo-Commit": commit.oid, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
    if blob.lfs:
        headers |= {"ETag": f'"{blob.sha256}"', "X-Linked-Etag": f'"{blob.sha256}"', "X-Linked-Size": str(blob.size)}
    else:
        headers["ETag"] = f'"{blob.git_oid}"'
    content = hub.state.read(blob)
    status, content = _byte_range(request.headers.get("Range"), content, headers)
    return Response(status, content, headers)  # for HEAD, only the headers (with the Content-Length) are sent


# --- listing models; discussions and pull requests ----------------------------------------------------


def list_models(hub: HubServer, request: Request, _: list[str]) -> Response:
    """`GET /api/models?author=&search=&limit=`: the repos this token can see, by id, PAGE_SIZE (or
    `limit`) a page; the next page's URL in the Link header, as the Hub pages (huggingface_hub's paginate)."""
    author, search = request.param("author"), (request.param("search") or "").lower()
    visible = [
        repo
        for repo_id, repo in sorted(hub.state.repos.items())
        if (author is None or repo.owner == author)
        and search in repo_id.lower()
        and (not repo.private or (request.token is not None and hub._member(request.token.user, repo.owner)))
    ]
    start = int(request.param("cursor") or 0)
    size = int(request.param("limit") or PAGE_SIZE)
    page = visible[start : start + size]
    headers = {}
    if start + size < len(visible):
        query = urlencode({key: values[0] for key, values in request.query.items() if key != "cursor"} | {"cursor": start + size})
        headers["Link"] = f'<{hub.endpoint}/api/models?{query}>; rel="next"'
    return Response.json([_model_item(repo) for repo in page], headers=headers)


def discussions(hub: HubServer, request: Request, arguments: list[str]) -> Response:
    """`GET .../discussions?type=&status=&author=&p=`: newest first, PAGE_SIZE a page; status `open`
    takes drafts too."""
    repo = hub.readable(arguments[0], request.token)
    kind, status, author = request.param("type") or "all", request.param("status") or "all", request.param("author")
    listed = [
        item
        for _, item in sorted(repo.discussions.items(), reverse=True)
        if (kind == "all" or item.is_pull_request == (kind == "pull_request"))
        and (status == "all" or (item.status in ("open", "draft")) == (status == "open"))
        and (author is None or item.author == author)
    ]
    start = int(request.param("p") or 0) * PAGE_SIZE
    page = [_discussion_item(repo, item) for item in listed[start : start + PAGE_SIZE]]
    closed = sum(item.status not in ("open", "draft") for item in repo.discussions.values())
    return Response.json({"discussions": page, "count": len(listed), "start": start, "numClosedDiscussions": closed})


def discussion(hub: HubServer, request: Request, arguments: list[str]) -> Response:
    repo = hub.readable(arguments[0], request.token)
    item = _discussion(repo, arguments[1])
    answer = _discussion_item(repo, item) | {"events": item.events}
    if item.is_pull_request:
        answer |= {"changes": {"base": f"refs/heads/{item.base}", "mergeCommitId": item.merge_commit}, "filesWithConflicts": []}
    return Response.json(answer)


def create_discussion(hub: HubServer, request: Request, arguments: list[str]) -> Response:
    """Anyone authenticated who can read the repo may open one; a pull request opened this way is a
    draft until its first commit to refs/pr/N."""
    repo = hub.writable(arguments[0], request.token, pull_request=True)
    payload = request.json()
    title = str(payload.get("title") or "").strip()
    if not 3 <= len(title) <= 200:
        raise HubError(400, "The title must be between 3 and 200 characters long")
    pull_request = bool(payload.get("pullRequest"))
    assert request.token is not None
    opened = hub.state.open_discussion(
        repo, title, str(payload.get("description") or ""), request.token.user, pull_request=pull_request,
        status="draft" if pull_request else "open",
    )  # fmt: skip
    return Response.json({"num": opened.num, "url": f"{hub.endpoint}/{repo.repo_id}/discussions/{opened.num}"})


def discussion_change(hub: HubServer, request: Request, arguments: list[str]) -> Response:
    """`POST .../discussions/{num}/{comment|status|title|merge}`: anyone who can read comments; the
    author or the repo's owner changes the status or the title; the owner (write role) merges."""
    repo_id, number, change = arguments
    repo = hub.writable(repo_id, request.token, pull_request=True)
    item = _discussion(repo, number)
    assert request.token is not None
    user, payload = request.token.user, request.json() if request.body else {}
    if change == "comment":
        text = str(payload.get("comment") or "").strip()
        if not text:
            raise HubError(400, "The comment is empty")
        item.events.append(comment_event(user, text))
        return Response.json({"newMessage": item.events[-1]})
    if change == "merge":
        hub.writable(repo_id, request.token)
        _merge(hub, repo, item, user)
        return Response.json({})
    if user not in (item.author, repo.owner):
        raise HubError(403, f"Only the author of #{item.num} or the owner of {repo_id} may change it")
    if change == "title":
        title = str(payload.get("title") or "").strip()
        item.events.append(event("title-change", user, {"from": item.title, "to": title}))
        item.title = title
        return Response.json({"newTitle": item.events[-1]})
    status = payload.get("status")
    if status not in ("open", "closed") or item.status == "merged":
        raise HubError(400, f"Cannot change the status of #{item.num} ({item.status}) to {status!r}")
    item.status = status
    item.events.append(event("status-change", user, {"status": status}))
    if payload.get("comment"):
        item.events.append(comment_event(user, str(payload["comment"])))
    return Response.json({"newStatus": next(e for e in reversed(item.events) if e["type"] == "status-change")})


def _merge(hub: HubServer, repo: Repo, item: Discussion, user: str) -> None:
    """Apply the pull request's changes (its head against the commit it started from) on its target
    branch in one commit; 409 when the branch changed the same files since."""
    if not item.is_pull_request or item.status != "open" or item.base is None or item.base_oid is None:
        raise HubError(400, f"#{item.num} is not an open pull request with commits")
    start, head = repo.commits[item.base_oid].files, repo.commits[repo.pull_requests[item.num]].files
    branch = repo.commits[repo.branches[item.base]]
    changed = {path for path in {*start, *head} if start.get(path) != head.get(path)}
    conflicts = sorted(path for path in changed if branch.files.get(path) not in (start.get(path), head.get(path)))
    if conflicts:
        raise HubError(409, f"Merge conflict in {', '.join(conflicts)}")
    operations: list[FileAdd | FileDelete] = [
        FileAdd(path, blob.sha256, blob.size, blob.lfs, blob.git_oid) if (blob := head.get(path)) else FileDelete(path, False)
        for path in sorted(changed)
        if branch.files.get(path) != head.get(path)
    ]
    made, _ = hub.state.commit(
        repo, item.base, operations, title=f"Merge pull request #{item.num}: {item.title}", description="",
        author=user, parent_commit=None, create_pr=False,
    )  # fmt: skip
    item.status, item.merge_commit = "merged", made.oid
    item.events.append(event("status-change", user, {"status": "merged"}))


def _discussion(repo: Repo, number: str) -> Discussion:
    item = repo.discussions.get(int(number)) if number.isdigit() else None
    if item is None:
        raise HubError(404, f"Discussion #{number} not found in {repo.repo_id}")
    return item


def _discussion_item(repo: Repo, item: Discussion) -> dict[str, Any]:
    comments = sum(event["type"] == "comment" for event in item.events)
    return {
        "num": item.num, "title": item.title, "status": item.status, "createdAt": date_text(item.created_at),
        "isPullRequest": item.is_pull_request, "author": {"name": item.author}, "repo": {"name": repo.repo_id, "type": "model"},
        "numComments": comments, "pinned": False, "topReactions": [],
    }  # fmt: skip


def _model_item(repo: Repo) -> dict[str, Any]:
    head = repo.commits[repo.branches["main"]]
    return {
        "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24], "id": repo.repo_id, "modelId": repo.repo_id,
        "author": repo.owner, "private": repo.private, "sha": head.oid, "lastModified": date_text(head.date),
        "createdAt": date_text(repo.created_at), "tags": [], "downloads": 0, "likes": 0,
    }  # fmt: skip


def _pull_request_author(repo: Repo, revision: str | None) -> str | None:
    """The author of the pull request whose ref `revision` is (refs/pr/N), else None."""
    number = revision[8:] if revision and revision.startswith("refs/pr/") else ""
    item = repo.discussions.get(int(number)) if number.isdigit() else None
    return item.author if item is not None and item.is_pull_request else None


# --- helpers ---------------------------------------------------------------------------------------


def _needs_lfs(path: str, size: int) -> bool:
    return path.endswith(LFS_SUFFIXES) or size > LFS_THRESHOLD


def _sibling(path: str, blob: Blob, with_blobs: bool) -> dict[str, Any]:
    if not with_blobs:
        return {"rfilename": path}
    lfs = {"size": blob.size, "sha256": blob.sha256, "pointerSize": blob.pointer_size} if blob.lfs else None
    return {"rfilename": path, "size": blob.size, "blobId": blob.git_oid, "lfs": lfs}


def _entries(commit: Commit) -> dict[str, dict[str, Any]]:
    """Every file and folder of a commit as the tree and paths-info endpoints describe them."""
    entries: dict[str, dict[str, Any]] = {}
    for path, blob in commit.files.items():
        entry: dict[str, Any] = {"type": "file", "oid": blob.git_oid, "size": blob.size, "path": path}
        if blob.lfs:
            entry["lfs"] = {"oid": blob.sha256, "size": blob.size, "pointerSize": blob.pointer_size}
        entries[path] = entry
        parts = path.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            folder_oid = hashlib.sha1(f"{commit.oid}:{folder}".encode()).hexdigest()
            entries.setdefault(folder, {"type": "directory", "oid": folder_oid, "size": 0, "path": folder})
    return dict(sorted(entries.items()))


def _commit_operations(hub: HubServer, body: bytes) -> tuple[dict[str, Any], list[FileAdd | FileDelete]]:
    """The header and the operations of an NDJSON commit body; regular files are stored on the way."""
    try:
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
    except ValueError:
        raise HubError(400, "the commit body is not NDJSON") from None
    if not lines or lines[0].get("key") != "header":
        raise HubError(400, "the commit body must start with a header line")
    operations: list[FileAdd | FileDelete] = []
    for line in lines[1:]:
        key, value = line.get("key"), line.get("value") or {}
        path = value.get("path", "")
        if key == "file":
            content = base64.b64decode(value["content"]) if value.get("encoding") == "base64" else value["content"].encode()
            if _needs_lfs(path, len(content)):
                raise HubError(400, f"Your push was rejected because it contains binary files: {path} must be uploaded with LFS")
            operations.append(FileAdd(path, hub.state.store(content), len(content), False, git_blob_oid(content)))
        elif key == "lfsFile":
            if value.get("algo") != "sha256":
                raise HubError(400, f"unsupported LFS algorithm for {path}")
            size = int(value["size"])
            pointer = LFS_POINTER.format(oid=value["oid"], size=size).encode()
            operations.append(FileAdd(path, value["oid"], size, True, git_blob_oid(pointer)))
        elif key in ("deletedFile", "deletedFolder"):
            operations.append(FileDelete(path, key == "deletedFolder"))
        else:
            raise HubError(400, f"unknown commit operation {key!r}")
    return lines[0].get("value") or {}, operations


def _byte_range(header: str | None, content: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip()) if header else None
    if match is None or not (match.group(1) or match.group(2)):
        return 200, content
    start, end = match.groups()
    first = int(start) if start else max(len(content) - int(end), 0)
    last = min(int(end), len(content) - 1) if start and end else len(content) - 1
    if first > last:
        raise HubError(416, "Requested range not satisfiable", headers={"Content-Range": f"bytes */{len(content)}"})
    headers["Content-Range"] = f"bytes {first}-{last}/{len(content)}"
    return 206, content[first : last + 1]


def _route(method: str, segments: list[str]) -> Route | None:
    """The endpoint for a request path, split at '/' (each segment URL-decoded: a quoted revision such
    as refs%2Fpr%2F1 stays one segment)."""
    match segments:
        case ["api", "whoami-v2"] if method == "GET":
            return Route("whoami", whoami, [])
        case ["api", "repos", "create"] if method == "POST":
            return Route("create_repo", create_repo, [])
        case ["api", "repos", "delete"] if method == "DELETE":
            return Route("delete_repo", delete_repo, [])
        case ["api", "validate-yaml"] if method == "POST":
            return Route("validate_yaml", validate_yaml, [])
        case ["api", "models"] if method == "GET":
            return Route("list_models", list_models, [])
        case ["api", "models", namespace, name, "discussions"] if method == "GET":
            return Route("discussions", discussions, [f"{namespace}/{name}"])
        case ["api", "models", namespace, name, "discussions"] if method == "POST":
            return Route("create_discussion", create_discussion, [f"{namespace}/{name}"])
        case ["api", "models", namespace, name, "discussions", number] if method == "GET":
            return Route("discussion", discussion, [f"{namespace}/{name}", number])
        case ["api", "models", namespace, name, "discussions", number, ("comment" | "status" | "title" | "merge") as change] if method == "POST":
            return Route("discussion_change", discussion_change, [f"{namespace}/{name}", number, change])
        case ["api", "models", namespace, name] if method == "GET":
            return Route("repo_info", repo_info, [f"{namespace}/{name}"])
        case ["api", "models", namespace, name, "revision", revision] if method == "GET":
            return Route("repo_info", repo_info, [f"{namespace}/{name}", revision])
        case ["api", "models", namespace, name, "preupload", revision] if method == "POST":
            return Route("preupload", preupload, [f"{namespace}/{name}", revision])
        case ["api", "models", namespace, name, "xet-write-token", revision] if method == "GET":
            return Route("xet_token", xet_write_token, [f"{namespace}/{name}", revision])
        case ["_xet", *_]:
            return Route("xet_cas", xet_cas, [])
        case ["api", "models", namespace, name, "commit", revision] if method == "POST":
            return Route("commit", commit, [f"{namespace}/{name}", revision])
        case ["api", "models", namespace, name, "tree", revision, *path] if method == "GET":
            return Route("tree", tree, [f"{namespace}/{name}", revision, *path])
        case ["api", "models", namespace, name, "paths-info", revision] if method == "POST":
            return Route("paths_info", paths_info, [f"{namespace}/{name}", revision])
        case ["api", "models", namespace, name, "refs"] if method == "GET":
            return Route("refs", refs, [f"{namespace}/{name}"])
        case ["api", "models", namespace, name, "commits", revision] if method == "GET":
            return Route("commits", commits, [f"{namespace}/{name}", revision])
        case ["api", "models", namespace, name, "branch", branch_name] if method in ("POST", "DELETE"):
            return Route("branch", branch, [f"{namespace}/{name}", branch_name])
        case [namespace, git_name, "info", "lfs", "objects", "batch"] if method == "POST" and git_name.endswith(".git"):
            return Route("lfs_batch", lfs_batch, [f"{namespace}/{git_name.removesuffix('.git')}"])
        case [namespace, git_name, "info", "lfs", "objects", "verify"] if method == "POST" and git_name.endswith(".git"):
            return Route("lfs_verify", lfs_verify, [f"{namespace}/{git_name.removesuffix('.git')}"])
        case ["_lfs", upload_id] if method == "PUT":
            return Route("lfs_upload", lfs_upload, [upload_id])
        case [namespace, name, "resolve", revision, *path] if method in ("GET", "HEAD") and path:
            return Route("resolve", resolve, [f"{namespace}/{name}", revision, *path])
    return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "loopback-hub"

    def do_GET(self) -> None:
        self._serve()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `HubServer.requests()` instead."""

    def _serve(self) -> None:
        hub: HubServer = self.server.hub  # type: ignore[attr-defined]
        raw_path, _, query = self.path.partition("?")
        segments = [unquote(segment) for segment in raw_path.strip("/").split("/")]
        route = _route(self.command, segments)
        kind = route.kind if route else "unknown"
        with hub.state.lock:
            fault = hub.state.take_fault(kind)
            released = hub.state.released
        try:
            self._answer(hub, route, segments, query, kind, fault, released)
        finally:
            if fault:  # set once the request is recorded, so a test that waits for it sees the bytes
                fault.triggered.set()

    def _answer(
        self, hub: HubServer, route: Route | None, segments: list[str], query: str, kind: str, fault: Fault | None, released: threading.Event
    ) -> None:
        user = None
        if fault and not fault.after:
            body = self._read_body(partial=fault.drop)  # a drop cuts the request halfway through its body
            if fault.drop or fault.hang is not None:
                released.wait(fault.hang or 0)
                return self._drop(hub, kind, user, len(body))
            response = _injected(fault)
        else:
            body = self._read_body()
            response, user = self._respond(hub, route, segments, query, body)
            if fault:  # `after`: handled, then the answer fails
                if fault.drop or fault.hang is not None:
                    released.wait(fault.hang or 0)
                    return self._drop(hub, kind, user, len(body))
                response = _injected(fault)
        self._record(hub, kind, response.status, user, len(body))
        if fault:  # before the answer leaves: a client that got it finds the fault triggered
            fault.triggered.set()
        self._send(response)

    def _respond(self, hub: HubServer, route: Route | None, segments: list[str], query: str, body: bytes) -> tuple[Response, str | None]:
        with hub.state.lock:
            try:
                token = self._token(hub) if route is None or route.kind != "xet_cas" else None  # Xet's own token
                if route is None:
                    raise HubError(404, f"the loopback Hub has no endpoint {self.command} /{'/'.join(segments)}")
                request = Request(self.command, parse_qs(query), self.headers, body, token)
                return route.handler(hub, request, route.arguments), token.user if token else None
            except HubError as error:
                return _error(error), None

    def _token(self, hub: HubServer) -> Token | None:
        authorization = self.headers.get("Authorization")
        if authorization is None:
            return None
        scheme, _, value = authorization.partition(" ")
        token = hub.state.tokens.get(value) if scheme.lower() == "bearer" else None
        if token is None:
            raise HubError(401, INVALID_TOKEN)
        return token

    def _read_body(self, partial: bool = False) -> bytes:
        """The request body (Content-Length or chunked); `partial`: only about half of it."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked(partial)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length // 2 if partial else length)

    def _read_chunked(self, partial: bool) -> bytes:
        chunks = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline().strip():
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
            if partial:
                return b"".join(chunks)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        headers = {"X-Request-Id": uuid.uuid4().hex, **response.headers, "Content-Length": str(len(response.body))}
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def _drop(self, hub: HubServer, kind: str, user: str | None, body_bytes: int) -> None:
        """Close the connection without an answer."""
        self._record(hub, kind, None, user, body_bytes)
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _record(self, hub: HubServer, kind: str, status: int | None, user: str | None, body_bytes: int) -> None:
        with hub.state.lock:
            hub.state.requests.append(RequestRecord(self.command, self.path, kind, status, user, body_bytes))


def _injected(fault: Fault) -> Response:
    status = fault.status or 500
    return _error(HubError(status, f"injected {status} on {fault.kind}", headers=fault.headers))


def _error(error: HubError) -> Response:
    headers = {"X-Error-Message": " ".join(error.message.split()), **error.headers}  # a header is one line
    if error.code:
        headers["X-Error-Code"] = error.code
    return Response.json({"error": error.message, **error.fields}, status=error.status, headers=headers)
