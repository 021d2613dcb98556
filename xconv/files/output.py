"""Output safety: one rule, in one place, for every file xconv writes.

A run names its inputs and every file it will write (the output and its side files: manifest,
generated source, the weights beside that source) in one :class:`Outputs`. Before any slow work:

- no output resolves to an input or to another output of the run, by real path (symlinks
  followed) or by inode (hard links);
- an existing output is refused unless ``force``; a folder, a missing folder or a name longer
  than the file system allows is refused at once.

Each writer then writes a temporary file in the target folder, named ``.xconv-XXXXXXXX.partial``
(hidden, and no format's glob matches it), removed on any error and on SIGTERM, SIGINT and
SIGHUP. Only when every writer has finished are the temporary files moved into place; without
``force`` by ``link()``, which fails rather than replace a file that appeared after the check.
A write error (disk full, file-size limit, ...) becomes one :class:`BadInputError` naming the
file, and whatever the run had written is removed: a failing run leaves nothing new behind.
"""

from __future__ import annotations

import errno
import os
import secrets
import signal
import threading
from collections.abc import Callable, Iterable

from ..errors import BadInputError, XconvError

__all__ = ["Outputs", "atomic_output", "TEMP_SUFFIX"]

TEMP_PREFIX, TEMP_SUFFIX = ".xconv-", ".partial"

_LIVE: set[str] = set()  # temporary files of every open Outputs in this process
_LOCK = threading.Lock()
_SIGNALS = tuple(s for s in (getattr(signal, n, None) for n in ("SIGTERM", "SIGINT", "SIGHUP")) if s is not None)
_previous: dict[int, object] = {}


def _on_signal(signum, frame):  # pragma: no cover - exercised by the kill tests in child processes
    for path in list(_LIVE):
        try:
            os.unlink(path)
        except OSError:
            pass
    _LIVE.clear()
    # end as the signal would have ended us (SIGINT too: unwinding through a writer thread
    # could wait on it)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _track(path: str) -> None:
    with _LOCK:
        if not _LIVE and threading.current_thread() is threading.main_thread():
            for s in _SIGNALS:
                try:
                    _previous[s] = signal.signal(s, _on_signal)
                except (ValueError, OSError):  # pragma: no cover - not settable here
                    pass
        _LIVE.add(path)


def _untrack(path: str) -> None:
    with _LOCK:
        _LIVE.discard(path)
        if not _LIVE and threading.current_thread() is threading.main_thread():
            for s, old in list(_previous.items()):
                try:
                    signal.signal(s, old if old is not None else signal.SIG_DFL)
                except (ValueError, OSError, TypeError):  # pragma: no cover
                    pass
            _previous.clear()


def _identity(path: str):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def write_error(path: str, exc: BaseException) -> BadInputError:
    """One readable message for a failed write."""
    seen = exc
    while not isinstance(seen, OSError) and (seen.__cause__ or seen.__context__) is not None:
        seen = seen.__cause__ or seen.__context__  # torch.save wraps the OSError in a RuntimeError
    exc = seen if isinstance(seen, OSError) else exc
    code = getattr(exc, "errno", None)
    why = {
        errno.ENOSPC: "the disk is full",
        errno.EFBIG: "the file would exceed the file-size limit (ulimit -f)",
        errno.EISDIR: "a folder is in the way",
        errno.ENAMETOOLONG: "the name is too long for the file system",
        errno.EACCES: "permission denied (is the folder writable?)",
        errno.EPERM: "permission denied (is the folder writable?)",
        errno.EROFS: "the file system is read-only (is the folder writable?)",
        getattr(errno, "EDQUOT", -1): "the disk quota is exceeded",
    }.get(code)
    if why is None:
        why = getattr(exc, "strerror", None) or str(exc).splitlines()[0][:200]
    return BadInputError(f"Cannot write {path!r}: {why}. Nothing was written.")


class Outputs:
    """The files one run writes, checked together before the work and moved into place together after it.

    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> with Outputs(force=False) as out:
    ...     tmp = out.add(os.path.join(d, "a.txt"), "output")
    ...     _ = open(tmp, "w").write("hi")
    >>> sorted(os.listdir(d))
    ['a.txt']
    """

    def __init__(self, inputs: Iterable[str | os.PathLike | None] = (), *, force: bool = False):
        self.force = force
        self._inputs: list[tuple[str, str, object]] = []
        for p in inputs:
            if p is None or str(p).startswith("zoo:"):
                continue
            p = os.fspath(p)
            self._inputs.append((p, os.path.realpath(p), _identity(p)))
        self._planned: list[tuple[str, str, str, str]] = []  # (path, label, real, tmp)

    # -- the check
    def check(self, path, label: str = "output") -> str:
        """Refuse ``path`` now if it may not be written; returns it as a str."""
        path = os.fspath(path)
        real = os.path.realpath(path)
        ident = _identity(path)
        for given, in_real, in_ident in self._inputs:
            if real == in_real or (ident is not None and ident == in_ident):
                how = "is" if real == in_real else "is a hard link to"
                raise BadInputError(f"The {label} {path!r} {how} the input {given!r}; choose another {label} path.")
        for other, other_label, other_real, _ in self._planned:
            if real == other_real or (ident is not None and ident == _identity(other)):
                raise BadInputError(f"The {label} {path!r} and the {other_label} {other!r} are the same file; give them different paths.")
        folder = os.path.dirname(real) or "."
        if not os.path.isdir(folder):
            raise BadInputError(f"Cannot write {path!r}: folder {os.path.dirname(os.path.abspath(path))!r} does not exist.")
        if os.path.isdir(path):
            raise BadInputError(f"Cannot write {path!r}: a folder is in the way.")
        try:
            limit = os.pathconf(folder, "PC_NAME_MAX")
        except (OSError, ValueError):
            limit = 255
        if len(os.path.basename(real).encode()) > limit:
            raise BadInputError(f"Cannot write {path!r}: the name is too long for the file system (at most {limit} bytes).")
        if os.path.lexists(path) and not self.force:
            raise BadInputError(
                f"The {label} {path!r} exists; pass force=True to overwrite it.", cli=f"The {label} {path!r} exists; pass --force to overwrite it."
            )
        return path

    def add(self, path, label: str = "output") -> str:
        """Check ``path`` and make its temporary file; returns the temporary path to write."""
        path = self.check(path, label)
        real = os.path.realpath(path)
        folder = os.path.dirname(real) or "."
        for _ in range(100):
            tmp = os.path.join(folder, f"{TEMP_PREFIX}{secrets.token_hex(4)}{TEMP_SUFFIX}")
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                break
            except FileExistsError:
                continue
            except OSError as exc:
                raise write_error(path, exc) from exc
        else:  # pragma: no cover
            raise BadInputError(f"Cannot write {path!r}: no free temporary name in {folder!r}.")
        os.close(fd)
        _track(tmp)
        self._planned.append((path, label, real, tmp))
        return tmp

    def write(self, path, write: Callable[[str], object], label: str = "output") -> str:
        """``add(path)`` and run ``write(tmp)``, turning a write error into one message."""
        self.add(path, label)
        return self.fill(path, write)

    def fill(self, path, write: Callable[[str], object]) -> str:
        """Run ``write(tmp)`` on the temporary file of the added ``path``."""
        path = os.fspath(path)
        tmp = next((t for p, _, _, t in self._planned if p == path), None)
        if tmp is None:
            raise KeyError(f"{path!r} was not added to this run's outputs")
        try:
            write(tmp)
        except XconvError as exc:
            if path in str(exc):
                raise
            raise type(exc)(f"Cannot write {path!r}: {exc}") from exc
        except (OSError, RuntimeError) as exc:  # torch.save reports a failed write as RuntimeError
            raise write_error(path, exc) from exc
        return path

    # -- the end
    def abort(self) -> None:
        """Delete every temporary file added so far and forget them; the final paths are not touched."""
        for *_, tmp in self._planned:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            _untrack(tmp)
        self._planned.clear()

    def commit(self) -> list[str]:
        """Move every temporary file onto its path (replacing only with ``force``); returns the paths.

        If one move fails, the files this run created are removed again and the temporaries deleted.
        """
        umask = os.umask(0)
        os.umask(umask)
        done: list[str] = []
        path = self._last_path()
        try:
            for path, label, real, tmp in self._planned:
                os.chmod(tmp, 0o666 & ~umask)
                existed = os.path.lexists(real)
                self._place(tmp, real, path, label)
                if not existed:
                    done.append(real)
        except BaseException as exc:
            for real in done:  # the run failed: take back what it added
                try:
                    os.unlink(real)
                except OSError:
                    pass
            self.abort()
            if isinstance(exc, OSError):
                raise write_error(path, exc) from exc
            raise
        for *_, tmp in self._planned:
            _untrack(tmp)
        paths = [p for p, *_ in self._planned]
        self._planned.clear()
        return paths

    def _place(self, tmp: str, real: str, path: str, label: str) -> None:
        if self.force:
            if os.path.isdir(real):
                raise BadInputError(f"Cannot write {path!r}: a folder is in the way.")
            os.replace(tmp, real)
            return
        try:
            os.link(tmp, real)  # atomic, and never replaces
        except FileExistsError as exc:
            raise BadInputError(
                f"The {label} {path!r} appeared while xconv was writing it (another process?); it was left as it is. "
                f"Pass --force to overwrite it."
            ) from exc
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            # no hard links here: claim the name exclusively, then move the file onto the claim
            try:
                os.close(os.open(real, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError as exc2:
                raise BadInputError(f"The {label} {path!r} appeared while xconv was writing it; pass --force to overwrite it.") from exc2
            os.replace(tmp, real)
            return
        os.unlink(tmp)

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if kind is None:
            self.commit()
        else:
            last = self._last_path()
            self.abort()
            if isinstance(exc, OSError) and not isinstance(exc, XconvError):
                raise write_error(last, exc) from exc
        return False

    def _last_path(self) -> str:
        return self._planned[-1][0] if self._planned else "the output"


def atomic_output(path, write: Callable[[str], object], *, force: bool = False, inputs: Iterable = ()) -> str:
    """Write one file under the output rule: ``write(tmp)`` then move it into place."""
    with Outputs(inputs, force=force) as out:
        out.write(path, write)
    return os.fspath(path)
