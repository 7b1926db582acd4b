"""Builds slugs, good and hostile, with Python's tarfile."""
import gzip
import io
import tarfile


def _info(name, type_=tarfile.REGTYPE, size=0, mode=0o644, linkname=""):
    ti = tarfile.TarInfo(name)
    ti.type = type_
    ti.size = size
    ti.mode = mode
    ti.linkname = linkname
    ti.mtime = 1700000000
    return ti


def file(name, data=b"", mode=0o644):
    return ("file", name, data, mode)


def dir_(name, mode=0o755):
    return ("dir", name, None, mode)


def symlink(name, target):
    return ("symlink", name, target, 0o777)


def hardlink(name, target):
    return ("hardlink", name, target, 0o644)


def chardev(name):
    return ("chardev", name, None, 0o666)


def fifo(name):
    return ("fifo", name, None, 0o644)


PROCFILE = file("./app/Procfile", b"web: ./server\nworker: ./work\n")


def build(path, entries, compression="gz", fmt=tarfile.PAX_FORMAT):
    """Writes entries (see the helpers above) as a tar at path."""
    mode = {"gz": "w:gz", "none": "w", "xz": "w:xz"}[compression]
    with tarfile.open(path, mode, format=fmt) as tf:
        for kind, name, payload, m in entries:
            if kind == "file":
                tf.addfile(_info(name, size=len(payload), mode=m), io.BytesIO(payload))
            elif kind == "dir":
                tf.addfile(_info(name, tarfile.DIRTYPE, mode=m))
            elif kind == "symlink":
                tf.addfile(_info(name, tarfile.SYMTYPE, linkname=payload, mode=m))
            elif kind == "hardlink":
                tf.addfile(_info(name, tarfile.LNKTYPE, linkname=payload, mode=m))
            elif kind == "chardev":
                ti = _info(name, tarfile.CHRTYPE, mode=m)
                ti.devmajor, ti.devminor = 1, 3
                tf.addfile(ti)
            elif kind == "fifo":
                tf.addfile(_info(name, tarfile.FIFOTYPE, mode=m))
    return path


def header_only(path, name, declared_size):
    """A gzip'd tar whose single entry declares declared_size bytes but
    carries none: an unpacker that writes before checking the size would
    fail only later; one that checks first refuses at the header."""
    ti = _info(name, size=declared_size)
    head = _info("./app/Procfile", size=14).tobuf(tarfile.PAX_FORMAT)
    head += b"web: ./server\n".ljust(512, b"\0")
    head += ti.tobuf(tarfile.PAX_FORMAT)
    with open(path, "wb") as f:
        f.write(gzip.compress(head))
    return path


def zeros_bomb(path, name, size):
    """A real bomb: size bytes of zeros, gzip'd (about 1000:1)."""
    with open(path, "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as gz:
            with tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tf:
                data = b"web: ./server\n"
                tf.addfile(_info("./app/Procfile", size=len(data)), io.BytesIO(data))

                class Zeros(io.RawIOBase):
                    def __init__(self, n):
                        self.left = n

                    def readinto(self, b):
                        n = min(len(b), self.left)
                        b[:n] = bytes(n)
                        self.left -= n
                        return n

                tf.addfile(_info(name, size=size), Zeros(size))
    return path
