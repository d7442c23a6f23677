from __future__ import annotations

import gzip
import io
import json
import subprocess
import tarfile
from pathlib import Path
from typing import Optional, Sequence

import pytest

from imagetool.cli import main
from imagetool.venv.native import (
    BaseLibraries,
    MissingLibrary,
    NativeLibraryError,
    base_libraries,
    check_native_libraries,
    debian_package_for,
    missing_libraries,
    read_elf,
    venv_contents,
)

GCC = "/usr/bin/gcc"
SITE = "lib/python3.11/site-packages"
Member = tuple[tarfile.TarInfo, Optional[bytes]]


def compile_shared_object(
    tmp_path: Path, name: str, *, libs: Sequence[str] = (), soname: str = "", rpath: str = ""
) -> bytes:
    """A tiny shared object whose DT_NEEDED lists `libs` (linked with --no-as-needed)."""
    source = tmp_path / f"{name}.c"
    source.write_text("int esb_native_test(void) { return 42; }\n")
    out = tmp_path / name
    argv = [GCC, "-shared", "-fPIC", "-nostdlib", "-o", str(out), str(source)]
    argv += ["-Wl,--no-as-needed"]
    link_dir = tmp_path / f"{name}-deps"
    link_dir.mkdir()
    for lib in libs:
        # A stub to link against, so that the output's DT_NEEDED names `lib` exactly.
        stub = link_dir / lib
        subprocess.run(
            [
                GCC,
                "-shared",
                "-fPIC",
                "-nostdlib",
                f"-Wl,-soname,{lib}",
                "-o",
                str(stub),
                str(source),
            ],
            check=True,
        )
        argv.append(str(stub))
    if soname:
        argv.append(f"-Wl,-soname,{soname}")
    if rpath:
        argv += [f"-Wl,-rpath,{rpath}", "-Wl,--disable-new-dtags"]
    subprocess.run(argv, check=True)
    return out.read_bytes()


def member(
    path: str, data: Optional[bytes] = None, *, kind: bytes = tarfile.REGTYPE, link: str = ""
) -> Member:
    info = tarfile.TarInfo(path)
    info.type = kind
    info.linkname = link
    info.size = len(data) if data is not None else 0
    return info, data


def record(dist_info: str, *paths: str) -> Member:
    rows = "".join(f"{p},sha256=x,1\n" for p in paths)
    return member(f".venv/{SITE}/{dist_info}/RECORD", rows.encode())


def write_layer(path: Path, members: Sequence[Member]) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    path.write_bytes(gzip.compress(buffer.getvalue(), mtime=0))
    return path


BASE = [
    member("usr", kind=tarfile.DIRTYPE),
    member("usr/lib", kind=tarfile.DIRTYPE),
    member("usr/lib/x86_64-linux-gnu", kind=tarfile.DIRTYPE),
    member("lib", kind=tarfile.SYMTYPE, link="usr/lib"),
    member("usr/lib/x86_64-linux-gnu/libc.so.6", b"\x7fELF"),
    member("usr/lib/x86_64-linux-gnu/libz.so.1", kind=tarfile.SYMTYPE, link="libz.so.1.2.13"),
    member("usr/lib/x86_64-linux-gnu/libz.so.1.2.13", b"\x7fELF"),
    member("usr/local/lib/libextra.so.3", b"\x7fELF"),
    member("opt/hidden/libhidden.so.1", b"\x7fELF"),
    member("etc/ld.so.conf", b"include /etc/ld.so.conf.d/*.conf\n"),
    member(
        "etc/ld.so.conf.d/x86_64-linux-gnu.conf",
        b"# Multiarch support\n/usr/local/lib\n/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n",
    ),
]


def test_base_libraries_reads_default_and_configured_directories() -> None:
    libraries = base_libraries([BASE], "amd64")

    assert libraries.libraries == ("libc.so.6", "libextra.so.3", "libz.so.1", "libz.so.1.2.13")
    assert "/usr/local/lib" in libraries.directories
    assert "/usr/lib" in libraries.directories


def test_base_libraries_applies_whiteouts_of_upper_layers() -> None:
    upper = [member("usr/lib/x86_64-linux-gnu/.wh.libz.so.1")]
    opaque = [member("usr/local/lib/.wh..wh..opq")]

    libraries = base_libraries([BASE, upper, opaque], "amd64")

    assert libraries.libraries == ("libc.so.6", "libz.so.1.2.13")


@pytest.mark.parametrize(
    "library, package",
    [
        pytest.param("libpq.so.5", "libpq5", id="plain"),
        pytest.param("libfoo2.so.1", "libfoo2-1", id="name-ends-in-digit"),
        pytest.param("libgtk-3.so.0", "libgtk-3-0", id="dashed"),
        pytest.param("libsqlite3.so.0", "libsqlite3-0", id="sqlite"),
        pytest.param("libxml2.so.2", "libxml2-2", id="xml2"),
        pytest.param("libfoo.so", None, id="unversioned"),
        pytest.param("libpthread.so.0", "libc6", id="glibc"),
        pytest.param("ld-linux-x86-64.so.2", "libc6", id="glibc-dynamic-linker"),
        pytest.param("ld.so.1", None, id="not-lib-prefixed"),
    ],
)
def test_debian_package_for(library: str, package: Optional[str]) -> None:
    assert debian_package_for(library) == package


def test_read_elf_reads_needed_soname_and_rpath(tmp_path: Path) -> None:
    data = compile_shared_object(
        tmp_path,
        "_ext.so",
        libs=["libz.so.1", "libpq.so.5"],
        soname="_ext.so",
        rpath="$ORIGIN/../x.libs",
    )

    elf = read_elf("p/_ext.so", data)

    assert elf is not None
    assert elf.needed == ("libz.so.1", "libpq.so.5")
    assert elf.soname == "_ext.so"
    assert elf.search_paths == ("$ORIGIN/../x.libs",)
    assert read_elf("p/x.py", b"print()\n") is None
    assert read_elf("p/broken.so", b"\x7fELF garbage") is None


def test_a_library_in_the_base_or_bundled_by_the_wheel_is_found(tmp_path: Path) -> None:
    ext = compile_shared_object(
        tmp_path,
        "_ext.so",
        libs=["libz.so.1", "libbundled-ab12.so.1"],
        rpath="$ORIGIN/../demo.libs",
    )
    bundled = compile_shared_object(tmp_path, "bundled.so", soname="libbundled-ab12.so.1")
    venv = venv_contents(
        [
            member(f".venv/{SITE}/demo/_ext.so", ext),
            member(f".venv/{SITE}/demo.libs/libbundled-ab12.so.1", bundled),
            record("demo-1.0.dist-info", "demo/_ext.so", "demo.libs/libbundled-ab12.so.1"),
        ]
    )

    assert missing_libraries(venv, base_libraries([BASE], "amd64")) == []


def test_a_library_elsewhere_in_the_venv_is_found(tmp_path: Path) -> None:
    ext = compile_shared_object(tmp_path, "_ext.so", libs=["libshared.so.7"])
    shared = compile_shared_object(tmp_path, "libshared.so", soname="libshared.so.7")
    venv = venv_contents(
        [
            member(f".venv/{SITE}/demo/_ext.so", ext),
            member(f".venv/{SITE}/other/lib/libshared.so", shared),
        ]
    )

    assert missing_libraries(venv, BaseLibraries((), ())) == []


def test_a_library_missing_everywhere_is_reported_with_its_wheel_and_package(
    tmp_path: Path,
) -> None:
    ext = compile_shared_object(tmp_path, "_ext.so", libs=["libz.so.1", "libpq.so.5"])
    venv = venv_contents(
        [
            member(f".venv/{SITE}/demo/_ext.cpython-311-x86_64-linux-gnu.so", ext),
            record("demo-1.0.dist-info", "demo/_ext.cpython-311-x86_64-linux-gnu.so"),
            member(".venv/bin/python", kind=tarfile.SYMTYPE, link="/usr/bin/python3.11"),
        ]
    )
    base = base_libraries([BASE], "amd64")

    assert missing_libraries(venv, base) == [
        MissingLibrary(
            "demo 1.0",
            f"/.venv/{SITE}/demo/_ext.cpython-311-x86_64-linux-gnu.so",
            "libpq.so.5",
            "libpq5",
        )
    ]
    with pytest.raises(NativeLibraryError) as error:
        check_native_libraries(venv, base, base_name="base:esb-service-base")
    message = str(error.value)
    assert "demo 1.0" in message and "needs libpq.so.5" in message
    assert "`libpq5`" in message and "pants esb-lock base:esb-service-base" in message


def test_check_native_command(tmp_path: Path) -> None:
    ext = compile_shared_object(tmp_path, "_ext.so", libs=["libsqlite3.so.0"])
    blob = write_layer(tmp_path / "venv.tar.gz", [member(f".venv/{SITE}/demo/_ext.so", ext)])
    without = tmp_path / "without.json"
    without.write_text(json.dumps(base_libraries([BASE], "amd64").to_json()))
    with_sqlite = tmp_path / "with.json"
    with_sqlite.write_text(
        json.dumps(
            base_libraries(
                [BASE, [member("usr/lib/x86_64-linux-gnu/libsqlite3.so.0", b"\x7fELF")]], "amd64"
            ).to_json()
        )
    )
    argv = ["check-native", f"--venv-blob={blob}", "--base=base:b"]

    assert main([*argv, f"--base-libraries={without}"]) == 1
    assert main([*argv, f"--base-libraries={with_sqlite}"]) == 0


def test_base_libraries_command_reads_an_oci_layout(tmp_path: Path) -> None:
    from imagetool.oci import Descriptor, OciLayout

    layout = OciLayout.create(tmp_path / "base.oci")
    blob = write_layer(tmp_path / "rootfs.tar.gz", BASE)
    layer = Descriptor.of("application/vnd.oci.image.layer.v1.tar+gzip", blob.read_bytes())
    layout.import_blob(blob, layer)
    config = layout.add_json_blob(
        "application/vnd.oci.image.config.v1+json",
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": ["x"]}},
    )
    manifest = layout.add_json_blob(
        "application/vnd.oci.image.manifest.v1+json",
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config.to_json(),
            "layers": [layer.to_json()],
        },
    )
    layout.write_index([manifest])
    out = tmp_path / "libs.json"

    assert main(["base-libraries", f"--layout={layout.root}", f"--out={out}"]) == 0

    assert "libz.so.1" in json.loads(out.read_text())["libraries"]
