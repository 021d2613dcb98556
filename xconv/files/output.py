"""Output safety: one rule, in one place, for every file xconv writes.

A run names its inputs and every file it will write (the output and its side files: manifest,
generated source, the weights beside that source) in one :class:`Outputs`. Before any slow work:

- no output resolves to an input or to another output of the run, by real path (symlinks
  followed) or by inode (hard links);
- an existing output is refused unless ``force``; a folder, a missing folder or a name longer
  than the file system allows is refused at once.

Each writer then writes a temporary file in the target folder, named ``.xconv-XXXXXXXX.partial``
(hidden, and no format's glob matches it), removed on any error and on SIGTERM, SIGINT and
SIGHUP. Only when every writer has finished are the temporary files moved into place:

- without ``force`` by ``renameat2(RENAME_NOREPLACE)`` (Linux), else by ``link()`` and
  ``unlink()``, else by claiming the name with ``O_EXCL``: never replacing a file that appeared
  after the check;
- with ``force``, a file that replaces an existing one is first flushed to disk (``fsync``), then
  renamed over it, then its folder is flushed: after a crash the path holds the old file or the
  whole new one, never a short one, and a reader that had the old file open keeps reading it.
  (New files are not flushed: a crash can lose them, but no old data.)

A write error (disk full, file-size limit, ...) becomes one :class:`BadInputError` naming the
output, and whatever the run had written is removed: a failing run leaves nothing new behind.
An error about an input read while writing (a streamed conversion reads its input inside the
writer) is passed on as it is, naming the input, not the output.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
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


@contextlib.contextmanager
def side_file(tmp: str, tag: str):
    """A hidden file beside the temporary ``tmp`` (``.xconv-XXXXXXXX.<tag>.partial``), for a
    writer's intermediate: tracked like a temporary (removed on SIGTERM/SIGINT/SIGHUP) and
    removed when the ``with`` ends, whatever happens. Yields its path; the writer creates it."""
    middle = tmp[: -len(TEMP_SUFFIX)] + f".{tag}" + TEMP_SUFFIX if tmp.endswith(TEMP_SUFFIX) else f"{tmp}.{tag}{TEMP_SUFFIX}"
    _track(middle)
    try:
        yield middle
    finally:
        _untrack(middle)
        try:
            os.unlink(middle)
        except FileNotFoundError:
            pass


def _keep(real: str) -> str | None:
    """A hidden hard link to ``real`` beside it (removed on SIGTERM like a temporary: the new file
    is then in place), so that a run whose later move fails can put ``real`` back; None where the
    file system has no hard links (the old file is then not recoverable, as with one output)."""
    folder = os.path.dirname(real) or "."
    for _ in range(8):
        backup = os.path.join(folder, f"{TEMP_PREFIX}{secrets.token_hex(4)}.old{TEMP_SUFFIX}")
        try:
            os.link(real, backup)
        except FileExistsError:
            continue
        except OSError:
            return None
        _track(backup)
        return backup
    return None


def _identity(path: str):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _os_error(exc: BaseException) -> BaseException:
    """The OSError behind ``exc`` (torch.save wraps it in a RuntimeError), else ``exc``."""
    seen, hops = exc, 0
    while not isinstance(seen, OSError) and (seen.__cause__ or seen.__context__) is not None and hops < 20:
        seen, hops = seen.__cause__ or seen.__context__, hops + 1
    return seen if isinstance(seen, OSError) else exc


def _why(exc: BaseException) -> str:
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
        text = str(exc).strip()
        why = getattr(exc, "strerror", None) or (text.splitlines()[0][:200] if text else type(exc).__name__)
    return why


def write_error(path: str, exc: BaseException) -> BadInputError:
    """One readable message for a failed write of ``path``."""
    return BadInputError(f"Cannot write {path!r}: {_why(_os_error(exc))}. Nothing was written.")


def _temp_names(tmp: str) -> re.Pattern:
    """The quoted names of ``tmp`` and of the files its writer makes beside it (``.xconv-XXXXXXXX.st.partial``)."""
    name = os.path.basename(tmp)
    stem = re.escape(name[: -len(TEMP_SUFFIX)] if name.endswith(TEMP_SUFFIX) else name)
    return re.compile(rf"""(['"])[^'"]*?{stem}[^'"]*\1""")


_NOREPLACE = [None]  # renameat2 from libc, False once unavailable


def _renameat2():
    if _NOREPLACE[0] is None:
        import ctypes.util  # here, not at import: `import xconv` stays light

        fn = False
        try:
            name = ctypes.util.find_library("c")
            fn = getattr(ctypes.CDLL(name, use_errno=True), "renameat2", False) if name else False
        except (OSError, AttributeError):  # pragma: no cover - not glibc / no libc found
            fn = False
        if fn:
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            fn.restype = ctypes.c_int
        _NOREPLACE[0] = fn
    return _NOREPLACE[0]


_AT_FDCWD, _RENAME_NOREPLACE = -100, 1


def rename_noreplace(src: str, dst: str) -> bool:
    """Rename ``src`` to ``dst`` in one step, failing with FileExistsError if ``dst`` exists.

    Returns False (nothing done) where the system has no such rename: no ``renameat2`` in libc,
    or the kernel or file system refuses the flag (ENOSYS, EINVAL, ENOTSUP).
    """
    fn = _renameat2()
    if not fn:
        return False
    import ctypes

    if fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        if code == errno.ENOSYS:
            _NOREPLACE[0] = False  # the kernel has none: do not ask again
        return False
    raise OSError(code, os.strerror(code), dst)


def _fsync(path: str, folder: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if folder else 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        # a folder on a file system that cannot flush one (some FUSE, CIFS): nothing more to do
        if not (folder and exc.errno in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF)):
            raise
    finally:
        os.close(fd)


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
            raise self._reworded(exc, path, tmp) from exc
        except (OSError, RuntimeError) as exc:  # torch.save reports a failed write as RuntimeError
            cause = _os_error(exc)
            named = self._input_named(getattr(cause, "filename", None), getattr(cause, "filename2", None))
            if named is not None:  # reading an input failed, not writing the output
                raise BadInputError(f"Cannot read {named!r}: {_why(cause)}. Nothing was written.") from exc
            raise write_error(path, exc) from exc
        return path

    def _input_named(self, *names) -> str | None:
        """The run's input that one of ``names`` (file names from an OSError) is, if any."""
        for name in names:
            if name is None:
                continue
            name = os.fsdecode(name) if isinstance(name, (str, bytes, os.PathLike)) else str(name)
            for given, real, _ in self._inputs:
                if name == given or os.path.realpath(name) == real:
                    return given
        return None

    def _reworded(self, exc: XconvError, path: str, tmp: str) -> XconvError:
        """An error a writer raised, told in the output's words.

        It is returned as it is when it names the output or one of the run's inputs (a streamed
        writer reads its input: an input cut meanwhile is the input's fault, and says so). A
        temporary file it names is renamed to the output. Otherwise it is about the data being
        written (a dtype the format cannot hold, ...) and gets "Cannot write <output>:" in front.
        """
        text, cli = str(exc), exc.cli
        temps = _temp_names(tmp)
        if temps.search(text) or (cli and temps.search(cli)):
            text = temps.sub(lambda m: repr(path), text)
            cli = temps.sub(lambda m: repr(path), cli) if cli else cli
        elif path in text or any(repr(n) in text for g, r, _ in self._inputs for n in (g, r)):
            return exc
        if path not in text:
            text = f"Cannot write {path!r}: {text}"
            cli = f"Cannot write {path!r}: {cli}" if cli else None
        new = type(exc)(text)
        new.cli = cli
        return new

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
        flushed: set[str] = set()
        kept: list[tuple[str, str]] = []  # (backup, path) of files replaced so far, for a multi-file run
        path = self._last_path()
        try:
            for path, label, real, tmp in self._planned:
                if self.force and os.path.lexists(real):
                    # it replaces a file: on disk before the rename, so that a crash leaves the old
                    # file or the whole new one (ext4 flushes on such a rename only with auto_da_alloc,
                    # XFS not at all); any error the disk reports late comes here, before anything moved
                    _fsync(tmp)
                    flushed.add(os.path.dirname(real) or ".")
                os.chmod(tmp, 0o666 & ~umask)  # after the flush, which opens it: a umask of 077 leaves no read bit
            for path, label, real, tmp in self._planned:
                existed = os.path.lexists(real)
                if existed and self.force and len(self._planned) > 1:
                    backup = _keep(real)  # a later move may fail: then this file comes back
                    if backup is not None:
                        kept.append((backup, real))
                self._place(tmp, real, path, label)
                if not existed:
                    done.append(real)
            for folder in sorted(flushed):  # the renames themselves on disk
                _fsync(folder, folder=True)
        except BaseException as exc:
            for real in done:  # the run failed: take back what it added
                try:
                    os.unlink(real)
                except OSError:
                    pass
            for backup, real in kept:  # and put back what it replaced
                try:
                    os.replace(backup, real)
                    if os.path.lexists(backup):  # real was never replaced: the same inode, rename did nothing
                        os.unlink(backup)
                except OSError:
                    pass
                _untrack(backup)
            self.abort()
            if isinstance(exc, OSError):
                raise write_error(path, exc) from exc
            raise
        for *_, tmp in self._planned:
            _untrack(tmp)
        for backup, _ in kept:
            try:
                os.unlink(backup)
            except OSError:
                pass
            _untrack(backup)
        paths = [p for p, *_ in self._planned]
        self._planned.clear()
        return paths

    def _place(self, tmp: str, real: str, path: str, label: str) -> None:
        if self.force:
            if os.path.isdir(real):
                raise BadInputError(f"Cannot write {path!r}: a folder is in the way.")
            os.replace(tmp, real)  # atomic: a reader of the old file keeps reading the old inode
            return
        appeared = (
            f"The {label} {path!r} appeared while xconv was writing it (another process?); it was left as it is. "
            f"Pass --force to overwrite it."
        )
        try:
            if rename_noreplace(tmp, real):  # one step, and never replaces
                return
            os.link(tmp, real)  # no renameat2 here: a hard link, which never replaces either
        except FileExistsError as exc:
            raise BadInputError(appeared) from exc
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            # no hard links here either: claim the name exclusively, then move the file onto the claim
            try:
                os.close(os.open(real, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError as exc2:
                raise BadInputError(appeared) from exc2
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
