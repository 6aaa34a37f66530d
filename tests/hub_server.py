"""A local HTTP server that speaks the part of the Hugging Face Hub API that huggingface_hub's client uses
to create a repo, commit files (preupload + NDJSON commit, files inline), list them (repo info, tree,
paths-info) and download them (resolve) -- so tests run the real client code (HF_ENDPOINT / endpoint=)
against files in a temporary folder. Also an OpenID configuration, for a Space's OAuth sign-in.

    server = HubServer(root, token="hf_test").start()    # server.url; server.down = True answers 503
    server.commit_limit = (2, 60.0)                       # a third commit within 60 s gets 429 + Retry-After
    python -m tests.hub_server ROOT [PORT]                # by hand

Every repo is kept as plain files under root/<type>s/<owner>/<name>/ plus a commit counter; writes
need `Authorization: Bearer <token>`, and so do reads of a private repo.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import shutil
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = r"(?P<type>model|dataset|space)s/(?P<repo>[^/]+/[^/]+)"
ROUTES = [
    ("POST", re.compile(r"^/api/repos/create$"), "create_repo"),
    ("POST", re.compile(rf"^/api/{REPO}/preupload/(?P<rev>[^/]+)$"), "preupload"),
    ("POST", re.compile(rf"^/api/{REPO}/commit/(?P<rev>[^/]+)$"), "commit"),
    ("GET", re.compile(rf"^/api/{REPO}/revision/(?P<rev>[^/]+)$"), "repo_info"),
    ("GET", re.compile(rf"^/api/{REPO}$"), "repo_info"),
    ("GET", re.compile(rf"^/api/{REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$"), "tree"),
    ("POST", re.compile(rf"^/api/{REPO}/paths-info/(?P<rev>[^/]+)$"), "paths_info"),
    ("GET", re.compile(r"^/(?:(?P<type>dataset|space)s/)?(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"),
     "resolve"),
    ("HEAD", re.compile(r"^/(?:(?P<type>dataset|space)s/)?(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"),
     "resolve"),
    ("GET", re.compile(r"^/\.well-known/openid-configuration$"), "openid"),
]


def git_blob_sha1(data: bytes) -> str:
    """The oid git (and the Hub) gives a regular file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubServer:
    def __init__(self, root: Path, token: str = "hf_test", user: str = "tester", port: int = 0):
        self.root, self.token, self.user = Path(root), token, user
        self.down = False          # True: every request gets 503, as when the Hub is unavailable
        self.commits: list[dict] = []  # (repo, paths, at) of every commit, for tests to read
        # (commits, seconds): the Hub's rate limit on a repo's commits; one more within the window is answered
        # 429 with a Retry-After, as the Hub does (about 128 an hour there).
        self.commit_limit: tuple[int, float] | None = None
        self.refused: list[float] = []  # when commits were refused with 429
        self.lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"hub": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread: threading.Thread | None = None

    def start(self) -> "HubServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="hub-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- storage -------------------------------------------------------------------------------------------

    def put(self, kind: str, repo: str, path: str, data: bytes, private: bool = False) -> None:
        """A file in a repo (created if need be), as if someone had pushed it: for repos the tests only read."""
        folder = self.repo_dir(kind, repo)
        with self.lock:
            if not folder.is_dir():
                (folder / "files").mkdir(parents=True)
                (folder / "commits").write_text("0")
                (folder / "repo.json").write_text(json.dumps({"private": private}))
            (folder / "files" / path).parent.mkdir(parents=True, exist_ok=True)
            (folder / "files" / path).write_bytes(data)
            (folder / "commits").write_text(str(int((folder / "commits").read_text()) + 1))

    def repo_dir(self, kind: str, repo: str) -> Path:
        return self.root / f"{kind or 'model'}s" / repo

    def files(self, kind: str, repo: str) -> dict[str, Path]:
        folder = self.repo_dir(kind, repo) / "files"
        return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}

    def sha(self, kind: str, repo: str) -> str:
        counter = self.repo_dir(kind, repo) / "commits"
        return hashlib.sha1(counter.read_text().encode()).hexdigest()

    def private(self, kind: str, repo: str) -> bool:
        return json.loads((self.repo_dir(kind, repo) / "repo.json").read_text())["private"]


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def _dispatch(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        self.query = urllib.parse.parse_qs(url.query)
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        if self.hub.down:
            return self._json(503, {"error": "The Hub is unavailable (test server marked down)"})
        for verb, pattern, name in ROUTES:
            match = pattern.match(urllib.parse.unquote(url.path))
            if verb == method and match:
                params = {k: v for k, v in match.groupdict().items() if v is not None}
                try:
                    return getattr(self, name)(**params)
                except Exception as err:  # a server bug shows as a 500 with its text, not a hang
                    return self._json(500, {"error": f"{type(err).__name__}: {err}"})
        self._json(404, {"error": f"no route for {method} {url.path}"})

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    # -- answers -----------------------------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload, headers: dict | None = None) -> None:
        error = {"X-Error-Message": payload["error"]} if isinstance(payload, dict) and "error" in payload else {}
        self._send(status, json.dumps(payload).encode(), "application/json", {**error, **(headers or {})})

    def _authorized(self) -> bool:
        return self.headers.get("Authorization", "") == f"Bearer {self.hub.token}"

    def _repo(self, kind: str | None, repo: str, write: bool = False):
        """The repo's folder, or an error already sent (None)."""
        kind = kind or "model"
        folder = self.hub.repo_dir(kind, repo)
        if write and not self._authorized():
            self._json(401, {"error": "Invalid credentials in Authorization header"})
            return None
        if not folder.is_dir() or (self.hub.private(kind, repo) and not self._authorized()):
            self._json(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
            return None
        return folder

    def create_repo(self) -> None:
        if not self._authorized():
            return self._json(401, {"error": "Invalid credentials in Authorization header"})
        payload = json.loads(self.body)
        kind = payload.get("type") or "model"
        repo = f"{payload.get('organization') or self.hub.user}/{payload['name']}"
        folder = self.hub.repo_dir(kind, repo)
        url = f"{self.hub.url}/{'' if kind == 'model' else kind + 's/'}{repo}"
        with self.hub.lock:
            if folder.is_dir():
                return self._json(409, {"error": "You already created this repo", "url": url})
            (folder / "files").mkdir(parents=True)
            (folder / "commits").write_text("0")
            (folder / "repo.json").write_text(json.dumps({"private": bool(payload.get("private"))
                                                                  or payload.get("visibility") == "private"}))
        self._json(200, {"url": url, "name": repo})

    def preupload(self, type: str, repo: str, rev: str) -> None:
        if self._repo(type, repo, write=True) is None:
            return
        existing = self.hub.files(type, repo)
        files = []
        for f in json.loads(self.body)["files"]:
            answer = {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
            if f["path"] in existing:
                answer["oid"] = git_blob_sha1(existing[f["path"]].read_bytes())
            files.append(answer)
        self._json(200, {"files": files, "commitOid": self.hub.sha(type, repo)})

    def commit(self, type: str, repo: str, rev: str) -> None:
        folder = self._repo(type, repo, write=True)
        if folder is None:
            return
        lines = [json.loads(line) for line in self.body.decode().splitlines() if line.strip()]
        with self.hub.lock:
            now = time.time()
            if self.hub.commit_limit is not None:
                most, window = self.hub.commit_limit
                recent = [c["at"] for c in self.hub.commits if c["repo"] == repo and now - c["at"] < window]
                if len(recent) >= most:
                    self.hub.refused.append(now)
                    wait = math.ceil(window - (now - min(recent)))
                    return self._json(429, {"error": "You have exceeded our commit rate limit."},
                                      {"Retry-After": str(wait)})
            paths = []
            for line in lines:
                key, value = line["key"], line["value"]
                if key == "file":
                    target = folder / "files" / value["path"]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    data = base64.b64decode(value["content"]) if value.get("encoding") == "base64" else \
                        value["content"].encode()
                    target.write_bytes(data)
                    paths.append(value["path"])
                elif key in ("deletedFile", "deletedFolder"):
                    target = folder / "files" / value["path"]
                    shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
                elif key != "header":
                    return self._json(400, {"error": f"this test server takes no {key!r} operations"})
            counter = folder / "commits"
            counter.write_text(str(int(counter.read_text()) + 1))
            sha = self.hub.sha(type, repo)
            self.hub.commits.append({"repo": repo, "paths": paths, "at": now})
        self._json(200, {"success": True, "commitOid": sha,
                         "commitUrl": f"{self.hub.url}/{type}s/{repo}/commit/{sha}"})

    def _entry(self, path: str, file: Path) -> dict:
        data = file.read_bytes()
        return {"type": "file", "path": path, "size": len(data), "oid": git_blob_sha1(data)}

    def repo_info(self, type: str, repo: str, rev: str = "main") -> None:
        if self._repo(type, repo) is None:
            return
        self._json(200, {"id": repo, "sha": self.hub.sha(type, repo), "private": self.hub.private(type, repo),
                         "siblings": [{"rfilename": p} for p in self.hub.files(type, repo)]})

    def tree(self, type: str, repo: str, rev: str, path: str = "") -> None:
        if self._repo(type, repo) is None:
            return
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        prefix = path.strip("/") + "/" if path.strip("/") else ""
        entries, folders = [], set()
        for name, file in self.hub.files(type, repo).items():
            if not name.startswith(prefix):
                continue
            rest = name[len(prefix):]
            if "/" in rest and not recursive:
                folders.add(prefix + rest.split("/")[0])
                continue
            if recursive:
                parts = rest.split("/")[:-1]
                folders.update(prefix + "/".join(parts[:i + 1]) for i in range(len(parts)))
            entries.append(self._entry(name, file))
        entries += [{"type": "directory", "path": f, "oid": "0" * 40, "size": 0} for f in sorted(folders)]
        self._json(200, entries)

    def paths_info(self, type: str, repo: str, rev: str) -> None:
        if self._repo(type, repo) is None:
            return
        wanted = urllib.parse.parse_qs(self.body.decode()).get("paths", []) if self.body[:1] != b"{" else \
            json.loads(self.body).get("paths", [])
        files = self.hub.files(type, repo)
        self._json(200, [self._entry(p, files[p]) for p in wanted if p in files])

    def resolve(self, repo: str, rev: str, path: str, type: str = "model") -> None:
        if self._repo(type, repo) is None:
            return
        files = self.hub.files(type, repo)
        if path not in files:
            return self._json(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
        data = files[path].read_bytes()
        self._send(200, data, "application/octet-stream",
                   {"X-Repo-Commit": self.hub.sha(type, repo), "ETag": f'"{git_blob_sha1(data)}"'})

    def openid(self) -> None:
        base = self.hub.url
        self._json(200, {"issuer": base, "authorization_endpoint": f"{base}/oauth/authorize",
                         "token_endpoint": f"{base}/oauth/token", "userinfo_endpoint": f"{base}/oauth/userinfo",
                         "jwks_uri": f"{base}/oauth/jwks"})


if __name__ == "__main__":
    server = HubServer(Path(sys.argv[1]), port=int(sys.argv[2]) if len(sys.argv) > 2 else 0).start()
    print(f"serving {server.root} at {server.url} (token {server.token!r}); Ctrl-C stops")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()
