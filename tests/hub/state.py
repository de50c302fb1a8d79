"""What the loopback Hub knows: users and their tokens, repositories with their commit history per
branch and pull request, the file contents on disk, the faults to inject and what it received.

Pure bookkeeping: no HTTP here (see server.py). Every method is called with `HubState.lock` held by
the HTTP layer, or by tests between requests.
"""

from __future__ import annotations

import hashlib
import html
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Literal, Mapping

LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"
GITATTRIBUTES = (
    "*.bin filter=lfs diff=lfs merge=lfs -text\n"
    "*.pt filter=lfs diff=lfs merge=lfs -text\n"
    "*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
)


def git_blob_oid(content: bytes) -> str:
    """The git object id of a file: what the Hub reports as a regular file's `oid`."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass(frozen=True)
class Blob:
    """A file in a commit; `lfs` files are stored by sha256 and known to git by their pointer."""

    sha256: str
    size: int
    lfs: bool
    git_oid: str

    @property
    def pointer_size(self) -> int:
        return len(LFS_POINTER.format(oid=self.sha256, size=self.size))


@dataclass(frozen=True)
class Commit:
    oid: str
    parent: str | None
    title: str
    message: str
    author: str
    date: datetime
    files: Mapping[str, Blob]
    """The whole tree at this commit: path -> blob."""


@dataclass
class Repo:
    repo_id: str
    owner: str
    private: bool
    created_at: datetime
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    """Branch name -> head commit oid."""
    pull_requests: dict[int, str] = field(default_factory=dict)
    """Pull request number -> head commit oid of refs/pr/N."""
    lfs_objects: set[str] = field(default_factory=set)
    """sha256 of the LFS objects uploaded (and checked) for this repo."""
    discussions: dict[int, Discussion] = field(default_factory=dict)
    """Number -> discussion or pull request (they share one numbering, as on the Hub)."""
    creator: str | None = None
    """The user who created it (an organization's contributor may write to the repos they created)."""

    def resolve(self, revision: str) -> Commit | None:
        """The commit a revision names: a branch, refs/heads/X, refs/pr/N, or a commit oid (or its prefix)."""
        revision = revision.removeprefix("refs/heads/")
        if revision in self.branches:
            return self.commits[self.branches[revision]]
        if revision.startswith("refs/pr/") and revision[8:].isdigit() and int(revision[8:]) in self.pull_requests:
            return self.commits[self.pull_requests[int(revision[8:])]]
        if len(revision) >= 7:
            matches = [commit for oid, commit in self.commits.items() if oid.startswith(revision)]
            if len(matches) == 1:
                return matches[0]
        return None

    def history(self, revision: str = "main") -> list[Commit]:
        """The commits reachable from `revision`, newest first."""
        commit = self.resolve(revision)
        history = []
        while commit is not None:
            history.append(commit)
            commit = self.commits.get(commit.parent) if commit.parent else None
        return history


@dataclass
class Discussion:
    """A discussion or a pull request; `events` are in the JSON form the Hub answers (comments,
    commits, status and title changes), the first comment being the description."""

    num: int
    title: str
    author: str
    is_pull_request: bool
    status: Literal["open", "closed", "merged", "draft"]
    created_at: datetime
    events: list[dict] = field(default_factory=list)
    base: str | None = None
    """A pull request's target branch."""
    base_oid: str | None = None
    """The commit of the target branch the pull request started from."""
    merge_commit: str | None = None


@dataclass(frozen=True)
class FileAdd:
    path: str
    sha256: str
    size: int
    lfs: bool
    git_oid: str


@dataclass(frozen=True)
class FileDelete:
    path: str
    folder: bool


class CommitRejected(Exception):
    """A commit the Hub refuses: `status` and `message` are what it answers, `code` its X-Error-Code."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


@dataclass
class Fault:
    """A failure the server injects into requests of one kind (see HubServer.fail)."""

    kind: str
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    hang: float | None = None
    after: bool = False
    times: int | None = 1
    hits: int = 0
    triggered: threading.Event = field(default_factory=threading.Event)

    @property
    def active(self) -> bool:
        return self.times is None or self.hits < self.times


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    kind: str
    status: int | None
    """None when the connection was dropped without an answer."""
    user: str | None
    body_bytes: int


Role = Literal["read", "write", "fineGrained"]
OrgRole = Literal["read", "contributor", "write", "admin"]


@dataclass(frozen=True)
class Token:
    user: str
    role: Role
    scopes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """A fine-grained token's permissions per entity (a user or organization name, or a repo id), e.g.
    {"alice": ("repo.content.read", "repo.write")}: the Hub's `auth.accessToken.fineGrained.scoped`."""


@dataclass
class Org:
    """An organization: its members' roles and whether its new repos are private when no visibility is asked."""

    name: str
    members: dict[str, OrgRole]
    private_by_default: bool = False


class HubState:
    def __init__(self, root: Path):
        self.root = root
        self.lock = threading.RLock()
        self.released = threading.Event()
        """Set on reset: wakes requests that hang on a fault."""
        self.reset()

    def reset(self) -> None:
        self.released.set()
        self.released = threading.Event()
        self.tokens: dict[str, Token] = {}
        self.orgs: dict[str, Org] = {}
        self.repos: dict[str, Repo] = {}
        self.faults: list[Fault] = []
        self.requests: list[RequestRecord] = []
        self.uploads: dict[str, tuple[str, str, int]] = {}
        """Upload id (the signed part of an LFS upload URL) -> (repo id, sha256, size)."""

    # --- users -----------------------------------------------------------------------------------

    def add_user(
        self, name: str, token: str | None = None, role: Role = "write", scopes: Mapping[str, tuple[str, ...]] | None = None
    ) -> str:
        token = token or "hf_" + secrets.token_hex(17)
        self.tokens[token] = Token(name, role, dict(scopes or {}))
        return token

    # --- storage ---------------------------------------------------------------------------------

    def object_path(self, sha256: str) -> Path:
        return self.root / "objects" / sha256[:2] / sha256[2:]

    def store(self, content: bytes) -> str:
        sha256 = hashlib.sha256(content).hexdigest()
        path = self.object_path(sha256)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
            temporary.write_bytes(content)
            temporary.replace(path)
        return sha256

    def read(self, blob: Blob) -> bytes:
        return self.object_path(blob.sha256).read_bytes()

    # --- repositories ----------------------------------------------------------------------------

    def create_repo(self, repo_id: str, owner: str, private: bool, creator: str | None = None) -> Repo:
        repo = Repo(repo_id=repo_id, owner=owner, private=private, created_at=_now(), creator=creator or owner)
        self.repos[repo_id] = repo
        content = GITATTRIBUTES.encode()
        sha256 = self.store(content)
        files = {".gitattributes": Blob(sha256, len(content), False, git_blob_oid(content))}
        initial = self._new_commit(None, "initial commit", "", owner, files)
        repo.commits[initial.oid] = initial
        repo.branches["main"] = initial.oid
        return repo

    def commit(
        self,
        repo: Repo,
        revision: str,
        operations: list[FileAdd | FileDelete],
        *,
        title: str,
        description: str,
        author: str,
        parent_commit: str | None,
        create_pr: bool,
        date: datetime | None = None,
    ) -> tuple[Commit, int | None]:
        """Apply `operations` atomically on top of `revision` (a branch, or refs/pr/N); with `create_pr`,
        on a new pull request against the branch instead. Returns the commit and the PR number. `date`:
        the commit's date (default now), as a `git push` of commits made earlier brings."""
        head = repo.resolve(revision)
        is_pr_ref = revision.startswith("refs/pr/")
        if head is None or not (revision in repo.branches or is_pr_ref):
            raise CommitRejected(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        if parent_commit is not None:
            parent = repo.resolve(parent_commit)
            if parent is None:
                raise CommitRejected(400, f"Invalid parentCommit: {parent_commit}")
            if not create_pr and parent.oid != head.oid:
                raise CommitRejected(412, "A commit has happened since. Please refresh and try again.")
            head = parent
        files = dict(head.files)
        for operation in operations:
            if isinstance(operation, FileDelete):
                _delete(files, operation)
            elif operation.lfs and operation.sha256 not in repo.lfs_objects:
                raise CommitRejected(
                    422, f"Your push was rejected because an LFS pointer pointed to a file that does not exist ({operation.path})"
                )
            else:
                files[operation.path] = Blob(operation.sha256, operation.size, operation.lfs, operation.git_oid)
        pull = repo.discussions.get(int(revision[8:])) if is_pr_ref else None
        if pull is not None and pull.status not in ("open", "draft"):
            raise CommitRejected(403, f"Pull request #{pull.num} is {pull.status}: it takes no more commits")
        commit = self._new_commit(head.oid, title, description, author, files, date)
        repo.commits[commit.oid] = commit
        if create_pr:
            opened = self.open_discussion(repo, title, description, author, pull_request=True, base=revision, status="open")
            repo.pull_requests[opened.num] = commit.oid
            opened.base_oid = head.oid
            opened.events.append(event("commit", author, {"subject": title, "oid": commit.oid}))
            return commit, opened.num
        if is_pr_ref:
            repo.pull_requests[int(revision[8:])] = commit.oid
            if pull is not None:
                pull.status = "open"
                pull.events.append(event("commit", author, {"subject": title, "oid": commit.oid}))
        else:
            repo.branches[revision.removeprefix("refs/heads/")] = commit.oid
        return commit, None

    def open_discussion(
        self,
        repo: Repo,
        title: str,
        description: str,
        author: str,
        *,
        pull_request: bool,
        base: str = "main",
        status: Literal["open", "draft"] = "open",
    ) -> Discussion:
        """A new discussion (or pull request, its ref `refs/pr/N` at the head of `base`)."""
        number = max([*repo.discussions, *repo.pull_requests], default=0) + 1
        base = base.removeprefix("refs/heads/")
        opened = Discussion(number, title, author, pull_request, status, _now(), [comment_event(author, description)])
        if pull_request:
            opened.base, opened.base_oid = base, repo.branches[base]
            repo.pull_requests[number] = repo.branches[base]
        repo.discussions[number] = opened
        return opened

    def _new_commit(
        self, parent: str | None, title: str, message: str, author: str, files: dict[str, Blob], date: datetime | None = None
    ) -> Commit:
        oid = hashlib.sha1(f"{parent}\n{title}\n{uuid.uuid4()}".encode()).hexdigest()
        return Commit(oid, parent, title, message, author, date or _now(), MappingProxyType(files))

    # --- faults and statistics -------------------------------------------------------------------

    def take_fault(self, kind: str) -> Fault | None:
        """The first active fault for requests of `kind`, counted as hit."""
        for fault in self.faults:
            if fault.kind == kind and fault.active:
                fault.hits += 1
                return fault
        return None


def event(kind: str, author: str, data: dict) -> dict:
    """A discussion event as the Hub answers it (huggingface_hub.community.deserialize_event)."""
    return {"id": secrets.token_hex(12), "type": kind, "createdAt": date_text(_now()), "author": {"name": author}, "data": data}


def comment_event(author: str, text: str) -> dict:
    latest = {"raw": text, "html": html.escape(text), "updatedAt": date_text(_now()), "author": {"name": author}}
    return event("comment", author, {"edited": False, "hidden": False, "latest": latest, "numEdits": 0, "history": [latest]})


def date_text(moment: datetime) -> str:
    """The Hub's date format (huggingface_hub parses exactly this)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _delete(files: dict[str, Blob], operation: FileDelete) -> None:
    if operation.folder:
        prefix = operation.path.rstrip("/") + "/"
        doomed = [path for path in files if path.startswith(prefix)]
    else:
        doomed = [operation.path] if operation.path in files else []
    if not doomed:
        raise CommitRejected(404, f"A file with this name doesn't exist: {operation.path}", "EntryNotFound")
    for path in doomed:
        del files[path]


def _now() -> datetime:
    return datetime.now(timezone.utc)
