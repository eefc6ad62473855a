"""The image store (`logship import`, `images`, `rmi`, `tag`) and safe layer extraction.

Archives are built here with tarfile: a busybox root filesystem from the host's /bin/busybox
(Debian's busybox-static, the image the Docker samples used), and hostile archives that try to write
outside the extraction root, each checked to leave the outside untouched.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import stat
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from logship.errors import Conflict, InvalidParameter, NotFound
from logship.runtime.changes import apply_changes
from logship.runtime.imageconfig import DEFAULT_PATH_ENV, IMPORT_COMMENT
from logship.runtime.images import ImageStore
from logship.runtime.reference import parse_reference
from logship.runtime.tarsafe import apply_layer
from tests.tarballs import MTIME, device, digest, directory, file, hardlink, symlink, tar_of

BUSYBOX = Path("/bin/busybox")
PASSWD = b"root:x:0:0:root:/root:/bin/sh\n"
APPLETS = ("sh", "echo", "ls")

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="keeping file owners needs root")


# -- archive builders ---------------------------------------------------------------------------------


def nobody_uses(image_id: str) -> list[str]:
    return []


def used_by(*containers: str) -> Callable[[str], list[str]]:
    return lambda image_id: list(containers)


# -- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def busybox_tar() -> bytes:
    """A flat root filesystem in `docker export` form: busybox, a few applet links, /etc and /tmp."""
    if not BUSYBOX.is_file():
        pytest.skip("needs /bin/busybox: apt-get install -y busybox-static")
    return tar_of(
        directory("bin/"),
        file("bin/busybox", BUSYBOX.read_bytes(), mode=0o755),
        *(symlink(f"bin/{applet}", "busybox") for applet in APPLETS),
        directory("etc/"),
        file("etc/passwd", PASSWD),
        directory("tmp/", mode=0o1777),
    )


@pytest.fixture
def busybox_size() -> int:
    return BUSYBOX.stat().st_size + len(PASSWD) + len(APPLETS) * len("busybox")


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "data")


def tiny_tar(content: bytes) -> bytes:
    return tar_of(file("hello.txt", content))


# -- import -------------------------------------------------------------------------------------------


def test_imported_busybox_is_listed_with_its_tag_id_and_size(
    store: ImageStore, busybox_tar: bytes, busybox_size: int
) -> None:
    imported = store.import_tarball(io.BytesIO(busybox_tar), "busybox:local")

    [listed] = store.list()
    assert listed.id == imported.id
    assert listed.repo_tags == ["busybox:local"]
    assert listed.size == busybox_size
    assert listed.created == listed.config["created"]


def test_image_id_hashes_the_stored_config_and_the_diff_id_hashes_the_uncompressed_tar(
    store: ImageStore, busybox_tar: bytes, tmp_path: Path
) -> None:
    image = store.import_tarball(io.BytesIO(busybox_tar), "busybox:local")

    config_bytes = (tmp_path / "data" / "images" / image.id.removeprefix("sha256:") / "config.json").read_bytes()
    assert image.id == digest(config_bytes)
    assert json.loads(config_bytes)["rootfs"] == {"type": "layers", "diff_ids": [digest(busybox_tar)]}


def test_import_config_is_shaped_like_dockers(store: ImageStore, busybox_tar: bytes) -> None:
    config = store.import_tarball(io.BytesIO(busybox_tar), "busybox:local").config

    assert config["os"] == "linux"
    assert config["architecture"] in ("amd64", "arm64", "386", "arm", "ppc64le", "s390x", "riscv64")
    assert config["comment"] == IMPORT_COMMENT == "Imported from -"
    assert config["history"] == [{"created": config["created"], "comment": "Imported from -"}]
    assert config["config"]["Env"] == [DEFAULT_PATH_ENV]
    assert config["config"]["Cmd"] is None
    assert config["config"]["Entrypoint"] is None
    assert config["config"]["WorkingDir"] == ""
    assert config["config"]["Labels"] is None


def test_imported_rootfs_holds_the_files_links_and_modes_of_the_archive(store: ImageStore, busybox_tar: bytes) -> None:
    rootfs = store.import_tarball(io.BytesIO(busybox_tar), "busybox:local").rootfs

    assert (rootfs / "bin/busybox").read_bytes() == BUSYBOX.read_bytes()
    assert stat.S_IMODE((rootfs / "bin/busybox").stat().st_mode) == 0o755
    assert os.readlink(rootfs / "bin/sh") == "busybox"
    assert (rootfs / "etc/passwd").read_bytes() == PASSWD
    assert stat.S_IMODE((rootfs / "tmp").stat().st_mode) == 0o1777
    assert (rootfs / "bin/busybox").stat().st_mtime == MTIME


def test_message_becomes_the_comment_and_history(store: ImageStore) -> None:
    config = store.import_tarball(io.BytesIO(tiny_tar(b"x")), None, message="nightly rootfs").config

    assert config["comment"] == "nightly rootfs"
    assert config["history"][0]["comment"] == "nightly rootfs"


def test_a_reference_without_a_tag_is_tagged_latest(store: ImageStore) -> None:
    image = store.import_tarball(io.BytesIO(tiny_tar(b"x")), "busybox")

    assert image.repo_tags == ["busybox:latest"]


def test_an_import_without_reference_is_an_untagged_image(store: ImageStore) -> None:
    image = store.import_tarball(io.BytesIO(tiny_tar(b"x")), None)

    assert image.repo_tags == []
    assert store.get(image.id).id == image.id


@pytest.mark.parametrize(
    "compress",
    [gzip.compress, bz2.compress, lzma.compress],
    ids=["gzip", "bzip2", "xz"],
)
def test_compressed_archives_import_with_the_diff_id_of_the_plain_tar(
    store: ImageStore, busybox_tar: bytes, compress: Callable[[bytes], bytes]
) -> None:
    image = store.import_tarball(io.BytesIO(compress(busybox_tar)), "busybox:local")

    assert image.config["rootfs"]["diff_ids"] == [digest(busybox_tar)]
    assert (image.rootfs / "bin/busybox").read_bytes() == BUSYBOX.read_bytes()


def test_importing_a_directory_gives_the_same_files_and_size(
    store: ImageStore, busybox_tar: bytes, busybox_size: int
) -> None:
    from_tar = store.import_tarball(io.BytesIO(busybox_tar), "from-tar")

    from_dir = store.import_directory(from_tar.rootfs, "from-dir")

    def tree(root: Path) -> dict[str, tuple[int, int]]:
        return {str(path.relative_to(root)): (path.lstat().st_mode, path.lstat().st_size) for path in root.rglob("*")}

    assert from_dir.repo_tags == ["from-dir:latest"]
    assert tree(from_dir.rootfs) == tree(from_tar.rootfs)
    assert from_dir.size == busybox_size


def test_importing_something_that_is_not_a_directory_is_refused(store: ImageStore, tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match="not a directory"):
        store.import_directory(tmp_path / "missing", "x")


def test_reimporting_a_tag_moves_it_to_the_new_image_and_leaves_the_old_one_untagged(
    store: ImageStore,
) -> None:
    first = store.import_tarball(io.BytesIO(tiny_tar(b"one")), "app:1")
    second = store.import_tarball(io.BytesIO(tiny_tar(b"two")), "app:1")

    assert store.get("app:1").id == second.id
    assert {image.id: image.repo_tags for image in store.list()} == {first.id: [], second.id: ["app:1"]}


def test_images_are_listed_newest_first(store: ImageStore) -> None:
    older = store.import_tarball(io.BytesIO(tiny_tar(b"one")), "a")
    newer = store.import_tarball(io.BytesIO(tiny_tar(b"two")), "b")

    assert [image.id for image in store.list()] == [newer.id, older.id]


def test_concurrent_imports_each_keep_their_own_tag(store: ImageStore) -> None:
    errors: list[BaseException] = []

    def run(number: int) -> None:
        try:
            store.import_tarball(io.BytesIO(tiny_tar(b"%d" % number)), f"app:{number}")
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=run, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    tags = {tag: image for image in store.list() for tag in image.repo_tags}
    assert sorted(tags) == [f"app:{number}" for number in range(8)]
    for number in range(8):
        assert (tags[f"app:{number}"].rootfs / "hello.txt").read_bytes() == b"%d" % number


# -- failures leave nothing behind --------------------------------------------------------------------


def assert_store_is_empty(store: ImageStore, data_root: Path) -> None:
    assert store.list() == []
    assert set(os.listdir(data_root / "images")) <= {"tmp", "layers", "repositories.json"}
    assert os.listdir(data_root / "images" / "layers") == []
    assert os.listdir(data_root / "images" / "tmp") == []


def test_a_refused_archive_leaves_no_image_and_no_staging_files(store: ImageStore, tmp_path: Path) -> None:
    hostile = tar_of(file("ok.txt", b"fine"), file("../escape.txt", b"bad"))

    with pytest.raises(InvalidParameter, match=r"\.\./escape\.txt"):
        store.import_tarball(io.BytesIO(hostile), "hostile")

    assert_store_is_empty(store, tmp_path / "data")
    assert not (tmp_path / "data" / "images" / "escape.txt").exists()


def test_a_truncated_archive_is_refused_and_leaves_nothing(
    store: ImageStore, tmp_path: Path, busybox_tar: bytes
) -> None:
    with pytest.raises(InvalidParameter, match="tar"):
        store.import_tarball(io.BytesIO(busybox_tar[: len(busybox_tar) // 2]), "cut")

    assert_store_is_empty(store, tmp_path / "data")


def test_a_truncated_gzip_archive_is_refused(store: ImageStore, tmp_path: Path, busybox_tar: bytes) -> None:
    compressed = gzip.compress(busybox_tar)

    with pytest.raises(InvalidParameter, match="cannot read the image archive"):
        store.import_tarball(io.BytesIO(compressed[: len(compressed) // 2]), "cut")

    assert_store_is_empty(store, tmp_path / "data")


def test_leftovers_of_an_interrupted_import_are_cleared_when_the_store_opens(tmp_path: Path) -> None:
    ImageStore(tmp_path / "data")
    leftover = tmp_path / "data" / "images" / "tmp" / "import-crashed" / "rootfs"
    leftover.mkdir(parents=True)
    (leftover / "half-written").write_bytes(b"x")

    reopened = ImageStore(tmp_path / "data")

    assert_store_is_empty(reopened, tmp_path / "data")


def test_the_image_directory_is_private_to_root(store: ImageStore, tmp_path: Path) -> None:
    assert stat.S_IMODE((tmp_path / "data" / "images").stat().st_mode) == 0o700


# -- references and lookup ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        ("busybox", "busybox:latest"),
        ("busybox:local", "busybox:local"),
        ("library/busybox:1.36", "busybox:1.36"),
        ("docker.io/library/busybox", "busybox:latest"),
        ("index.docker.io/someone/app:v2", "someone/app:v2"),
        ("someone/app", "someone/app:latest"),
        ("registry:5000/name:tag", "registry:5000/name:tag"),
        ("localhost/app", "localhost/app:latest"),
        ("Registry.Example.com/team/app:V1_x", "Registry.Example.com/team/app:V1_x"),
        ("someone/a-b__c.d--e", "someone/a-b__c.d--e:latest"),
    ],
)
def test_references_normalise_as_dockers(given: str, normalised: str) -> None:
    assert str(parse_reference(given).with_default_tag()) == normalised


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("Busybox", "invalid reference format: repository name must be lowercase"),
        ("someone/App:tag", "invalid reference format: repository name must be lowercase"),
        ("busybox:", "invalid reference format"),
        ("bad name", "invalid reference format"),
        ("busybox:" + "t" * 129, "invalid reference format"),
        ("-leading-dash", "invalid reference format"),
        ("", "invalid reference format"),
        ("a" * 64 + "b" * 0, None),
        ("x/" + "a" * 260, "repository name must not be more than 255 characters"),
    ],
)
def test_invalid_references_get_dockers_message(given: str, message: str | None) -> None:
    if message is None:  # 64 hex characters look like an image ID
        given = "0123456789abcdef" * 4
        message = f"invalid repository name ({given}), cannot specify 64-byte hexadecimal strings"

    with pytest.raises(InvalidParameter) as refused:
        parse_reference(given)

    assert str(refused.value) == message


def test_a_bad_reference_is_refused_before_the_archive_is_read(store: ImageStore) -> None:
    stream = io.BytesIO(tiny_tar(b"x"))

    with pytest.raises(InvalidParameter, match="repository name must be lowercase"):
        store.import_tarball(stream, "MyApp")

    assert stream.tell() == 0
    assert store.list() == []


def test_a_digest_reference_cannot_be_imported(store: ImageStore) -> None:
    with pytest.raises(InvalidParameter, match="cannot import digest reference"):
        store.import_tarball(io.BytesIO(tiny_tar(b"x")), "app@sha256:" + "a" * 64)


def test_get_finds_an_image_by_tag_full_id_bare_id_and_unique_prefix(store: ImageStore) -> None:
    image = store.import_tarball(io.BytesIO(tiny_tar(b"x")), "app:1")
    bare = image.id.removeprefix("sha256:")

    for name in ("app:1", image.id, bare, bare[:12], bare[:1], "sha256:" + bare[:7]):
        assert store.get(name).id == image.id, name


def test_get_of_an_unknown_name_says_no_such_image_as_docker(store: ImageStore) -> None:
    store.import_tarball(io.BytesIO(tiny_tar(b"x")), "app:1")

    with pytest.raises(NotFound) as missing:
        store.get("nosuch")
    assert str(missing.value) == "No such image: nosuch:latest"

    with pytest.raises(NotFound) as missing_id:
        store.get("sha256:" + "0" * 64)
    assert str(missing_id.value) == "No such image: sha256:" + "0" * 64


def test_an_ambiguous_id_prefix_finds_nothing_and_says_to_give_more(store: ImageStore) -> None:
    # Seventeen images: at least two share a first hex digit.
    ids = [store.import_tarball(io.BytesIO(tiny_tar(b"%d" % n)), None).id for n in range(17)]
    first_digits = [image_id.removeprefix("sha256:")[0] for image_id in ids]
    shared = next(digit for digit in first_digits if first_digits.count(digit) > 1)

    with pytest.raises(NotFound, match=f"No such image: {shared}:latest .*give more characters"):
        store.get(shared)


# -- tag ----------------------------------------------------------------------------------------------


def test_tag_adds_a_name_and_a_moved_tag_leaves_the_old_image(store: ImageStore) -> None:
    first = store.import_tarball(io.BytesIO(tiny_tar(b"one")), "app:1")
    second = store.import_tarball(io.BytesIO(tiny_tar(b"two")), "app:2")

    store.tag("app:1", "registry:5000/app")
    store.tag(second.id, "app:1")

    assert store.get("registry:5000/app:latest").id == first.id
    assert store.get("app:1").id == second.id
    assert store.get(first.id).repo_tags == ["registry:5000/app:latest"]


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("app@sha256:" + "a" * 64, "refusing to create a tag with a digest reference"),
        ("sha256:abc", "refusing to create an ambiguous tag using digest algorithm as name"),
        ("App", "invalid reference format: repository name must be lowercase"),
    ],
)
def test_tag_refuses_names_docker_refuses(store: ImageStore, reference: str, message: str) -> None:
    store.import_tarball(io.BytesIO(tiny_tar(b"x")), "app:1")

    with pytest.raises(InvalidParameter) as refused:
        store.tag("app:1", reference)

    assert str(refused.value) == message


def test_tagging_an_unknown_image_is_not_found(store: ImageStore) -> None:
    with pytest.raises(NotFound, match="No such image: ghost:latest"):
        store.tag("ghost", "app:1")


# -- rmi ----------------------------------------------------------------------------------------------


def test_rmi_of_one_of_two_tags_only_untags(store: ImageStore) -> None:
    image = store.import_tarball(io.BytesIO(tiny_tar(b"x")), "app:1")
    store.tag(image.id, "app:2")

    assert store.remove("app:1", force=False, in_use_by=nobody_uses) == [{"Untagged": "app:1"}]
    assert store.get(image.id).repo_tags == ["app:2"]
    assert image.rootfs.is_dir()


def test_rmi_of_the_last_tag_untags_and_deletes_the_image_and_its_layer(store: ImageStore, tmp_path: Path) -> None:
    archive = tiny_tar(b"x")
    image = store.import_tarball(io.BytesIO(archive), "busybox")

    records = store.remove("busybox", force=False, in_use_by=nobody_uses)

    assert records == [{"Untagged": "busybox:latest"}, {"Deleted": image.id}, {"Deleted": digest(archive)}]
    assert_store_is_empty(store, tmp_path / "data")


def test_rmi_reports_a_layer_deleted_only_when_no_other_image_has_it(store: ImageStore) -> None:
    archive = tiny_tar(b"x")
    first = store.import_tarball(io.BytesIO(archive), "a", message="first")
    second = store.import_tarball(io.BytesIO(archive), "b", message="second")

    assert store.remove("a", force=False, in_use_by=nobody_uses) == [
        {"Untagged": "a:latest"},
        {"Deleted": first.id},
    ]
    assert store.remove("b", force=False, in_use_by=nobody_uses) == [
        {"Untagged": "b:latest"},
        {"Deleted": second.id},
        {"Deleted": digest(archive)},
    ]


def test_rmi_by_id_of_an_image_with_several_tags_must_be_forced(store: ImageStore) -> None:
    image = store.import_tarball(io.BytesIO(tiny_tar(b"x")), "app:2")
    store.tag(image.id, "app:1")
    short = image.id.removeprefix("sha256:")[:12]

    with pytest.raises(Conflict) as refused:
        store.remove(short, force=False, in_use_by=nobody_uses)
    assert str(refused.value) == (
        f"conflict: unable to delete {short} (must be forced) - image is referenced in multiple repositories"
    )

    assert store.remove(short, force=True, in_use_by=nobody_uses)[:3] == [
        {"Untagged": "app:1"},
        {"Untagged": "app:2"},
        {"Deleted": image.id},
    ]
    assert store.list() == []


def test_rmi_by_id_of_an_untagged_image_deletes_it(store: ImageStore) -> None:
    image = store.import_tarball(io.BytesIO(tiny_tar(b"x")), None)

    assert store.remove(image.id, force=False, in_use_by=nobody_uses)[0] == {"Deleted": image.id}
    assert not image.rootfs.exists()


def test_rmi_of_the_only_tag_of_an_image_a_container_uses_is_a_conflict(store: ImageStore) -> None:
    image = store.import_tarball(io.BytesIO(tiny_tar(b"x")), "busybox")
    container = "1c2f3d4e5f6a" + "7" * 52
    short = image.id.removeprefix("sha256:")[:12]

    with pytest.raises(Conflict) as refused:
        store.remove("busybox", force=False, in_use_by=used_by(container))

    assert str(refused.value) == (
        'conflict: unable to remove repository reference "busybox" (must force) - '
        f"container 1c2f3d4e5f6a is using its referenced image {short}"
    )
    assert store.get("busybox").id == image.id


def test_rmi_by_id_of_an_image_a_container_uses_is_a_conflict(store: ImageStore) -> None:
    image = store.import_tarball(io.BytesIO(tiny_tar(b"x")), "busybox")
    short = image.id.removeprefix("sha256:")[:12]

    with pytest.raises(Conflict) as refused:
        store.remove(image.id, force=False, in_use_by=used_by("1c2f3d4e5f6a"))

    assert str(refused.value) == (
        f"conflict: unable to delete {short} (must be forced) - image is being used by container 1c2f3d4e5f6a"
    )


def test_forced_rmi_of_an_image_in_use_untags_it_and_keeps_its_data_until_unused(store: ImageStore) -> None:
    image = store.import_tarball(io.BytesIO(tiny_tar(b"x")), "busybox")

    assert store.remove("busybox", force=True, in_use_by=used_by("1c2f3d4e5f6a")) == [{"Untagged": "busybox:latest"}]
    assert store.get(image.id).repo_tags == []
    assert (image.rootfs / "hello.txt").read_bytes() == b"x"

    assert store.remove(image.id, force=False, in_use_by=nobody_uses)[0] == {"Deleted": image.id}
    assert not image.rootfs.exists()


def test_rmi_of_an_unknown_image_is_not_found(store: ImageStore) -> None:
    with pytest.raises(NotFound, match="No such image: ghost:latest"):
        store.remove("ghost", force=True, in_use_by=nobody_uses)


# -- --change -----------------------------------------------------------------------------------------


def imported_config(*changes: str) -> dict[str, Any]:
    config: dict[str, Any] = {"Env": [DEFAULT_PATH_ENV], "Cmd": None, "Entrypoint": None, "Labels": None}
    config["WorkingDir"] = ""
    apply_changes(config, changes)
    return config


def test_env_adds_variables_and_replaces_existing_ones_in_place() -> None:
    config = imported_config("ENV FOO=bar", "ENV PATH=/opt/bin:$PATH")

    assert config["Env"] == [f"PATH=/opt/bin:{DEFAULT_PATH_ENV.removeprefix('PATH=')}", "FOO=bar"]


def test_env_takes_quotes_escapes_and_the_old_one_pair_form() -> None:
    config = imported_config(
        "ENV A=\"one two\" B=three\\ four C='$NOT'",
        "ENV GREETING hello   world",
        "env lower=case",
    )

    assert config["Env"][1:] == ["A=one two", "B=three four", "C=$NOT", "GREETING=hello   world", "lower=case"]


def test_env_expands_from_the_variables_set_before_the_instruction() -> None:
    config = imported_config("ENV A=1", "ENV A=2 B=$A C=${UNSET:-fallback} D=${A:+set}")

    assert config["Env"][1:] == ["A=2", "B=1", "C=fallback", "D=set"]


def test_cmd_takes_the_json_form_or_runs_the_shell_form_with_sh() -> None:
    assert imported_config('CMD ["echo", "hi"]')["Cmd"] == ["echo", "hi"]
    assert imported_config("CMD echo $HOME")["Cmd"] == ["/bin/sh", "-c", "echo $HOME"]
    assert imported_config("CMD [not json")["Cmd"] == ["/bin/sh", "-c", "[not json"]


def test_entrypoint_clears_cmd_unless_a_cmd_change_set_it() -> None:
    config = {"Env": [], "Cmd": ["old"], "Entrypoint": None}
    apply_changes(config, ['ENTRYPOINT ["/bin/busybox"]'])
    assert config["Entrypoint"] == ["/bin/busybox"]
    assert config["Cmd"] is None

    both = imported_config('CMD ["sh"]', "ENTRYPOINT exec busybox")
    assert both["Entrypoint"] == ["/bin/sh", "-c", "exec busybox"]
    assert both["Cmd"] == ["sh"]


def test_workdir_resolves_relative_paths_against_the_previous_one() -> None:
    assert imported_config("WORKDIR /srv", "WORKDIR app/../web")["WorkingDir"] == "/srv/web"
    assert imported_config("WORKDIR relative")["WorkingDir"] == "/relative"
    assert imported_config("ENV BASE=/opt", "WORKDIR $BASE/app")["WorkingDir"] == "/opt/app"


def test_label_sets_labels() -> None:
    config = imported_config('LABEL a=1 "b c"=two', "LABEL a=3")

    assert config["Labels"] == {"a": "3", "b c": "two"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("RUN echo hi", "run is not a valid change command: logship supports CMD, ENTRYPOINT, ENV, LABEL, WORKDIR"),
        ("EXPOSE 80", "expose is not a valid change command"),
        ("CMD", "CMD requires at least one argument"),
        ('CMD ["echo", 1]', "CMD: when using JSON array syntax, arrays must be comprised of strings only"),
        ("ENV A=1 B", 'Syntax error - can\'t find = in "B". Must be of the form: name=value'),
        ("ENV ONLYNAME", "ENV must have two arguments"),
        ("ENV =x", "ENV names can not be blank"),
        ('ENV A="open', "unexpected end of statement while looking for matching double-quote"),
        ("ENV A=${B", "missing '}'"),
        ("ENV A=${B:?x}", "bad substitution"),
    ],
)
def test_bad_changes_are_refused_with_a_message_naming_the_problem(change: str, message: str) -> None:
    with pytest.raises(InvalidParameter) as refused:
        imported_config(change)

    assert str(refused.value).startswith(message)


def test_changes_shape_the_imported_config_and_a_bad_one_stops_before_reading(store: ImageStore) -> None:
    image = store.import_tarball(
        io.BytesIO(tiny_tar(b"x")), "app", changes=["ENV MODE=prod", 'CMD ["/bin/sh"]', "LABEL team=logs"]
    )
    assert image.config["config"]["Env"] == [DEFAULT_PATH_ENV, "MODE=prod"]
    assert image.config["config"]["Cmd"] == ["/bin/sh"]
    assert image.config["config"]["Labels"] == {"team": "logs"}

    stream = io.BytesIO(tiny_tar(b"y"))
    with pytest.raises(InvalidParameter, match="user is not a valid change command"):
        store.import_tarball(stream, "app:2", changes=["USER nobody"])
    assert stream.tell() == 0


# -- safe extraction ----------------------------------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "root"
    path.mkdir()
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory beside the root that hostile archives aim at; it must stay empty."""
    path = tmp_path / "outside"
    path.mkdir()
    return path


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file outside the root that hostile hard links aim at; its link count must stay 1."""
    path = tmp_path / "victim"
    path.write_bytes(b"secret")
    return path


def extract(root: Path, *members: tuple[tarfile.TarInfo, bytes]) -> str:
    return apply_layer(io.BytesIO(tar_of(*members)), root)


def hostile_archives(outside: Path, victim: Path) -> dict[str, tuple[str, list[tuple[tarfile.TarInfo, bytes]]]]:
    """Each case: the member the refusal must name, and the archive."""
    return {
        "absolute path": (str(outside / "pwned"), [file(str(outside / "pwned"), b"x")]),
        "dot-dot": ("../outside/pwned", [file("../outside/pwned", b"x")]),
        "dot-dot in the middle": ("a/../../outside/pwned", [directory("a/"), file("a/../../outside/pwned", b"x")]),
        "symlink to the outside, then a file through it": (
            "escape/pwned",
            [symlink("escape", str(outside)), file("escape/pwned", b"x")],
        ),
        "symlink to /, then a file through it": (
            f"escape{outside}/pwned",
            [symlink("escape", "/"), file(f"escape{outside}/pwned", b"x")],
        ),
        "relative symlink upwards, then a directory through it": (
            "up/pwned",
            [symlink("up", "../outside"), directory("up/pwned/")],
        ),
        "hard link to /etc/passwd": ("passwd", [hardlink("passwd", "/etc/passwd")]),
        "hard link with dot-dot": ("stolen", [hardlink("stolen", "../victim")]),
        "hard link through a symlink": (
            "stolen",
            [symlink("escape", str(victim.parent)), hardlink("stolen", "escape/victim")],
        ),
        "character device": ("dev/null", [directory("dev/"), device("dev/null", tarfile.CHRTYPE)]),
        "block device": ("dev/sda", [directory("dev/"), device("dev/sda", tarfile.BLKTYPE)]),
    }


HOSTILE_CASES = list(hostile_archives(Path("/x"), Path("/y")))


@pytest.mark.parametrize("case", HOSTILE_CASES)
def test_hostile_archives_are_refused_naming_the_member_and_write_nothing_outside(
    case: str, root: Path, outside: Path, victim: Path
) -> None:
    member, members = hostile_archives(outside, victim)[case]
    passwd_links = Path("/etc/passwd").stat().st_nlink

    with pytest.raises(InvalidParameter) as refused:
        extract(root, *members)

    assert repr(member) in str(refused.value)
    assert list(outside.iterdir()) == []
    assert victim.stat().st_nlink == 1
    assert Path("/etc/passwd").stat().st_nlink == passwd_links


def test_a_file_entry_replaces_a_planted_symlink_instead_of_writing_through_it(root: Path, outside: Path) -> None:
    extract(root, symlink("config", str(outside / "config")), file("config", b"mine"))

    assert not (root / "config").is_symlink()
    assert (root / "config").read_bytes() == b"mine"
    assert list(outside.iterdir()) == []


def test_a_hard_link_to_a_symlink_links_the_symlink_not_its_target(root: Path, victim: Path) -> None:
    extract(root, symlink("link", str(victim)), hardlink("again", "link"))

    assert os.readlink(root / "again") == str(victim)
    assert victim.stat().st_nlink == 1


def test_symlinks_may_point_anywhere(root: Path) -> None:
    extract(root, symlink("etc-passwd", "/etc/passwd"), symlink("up", "../../.."))

    assert os.readlink(root / "etc-passwd") == "/etc/passwd"
    assert os.readlink(root / "up") == "../../.."


def test_hard_links_inside_the_root_share_the_file(root: Path) -> None:
    extract(root, file("bin/busybox", b"binary", mode=0o755), hardlink("bin/sh", "bin/busybox"))

    assert (root / "bin/sh").stat().st_ino == (root / "bin/busybox").stat().st_ino


def test_a_hard_link_to_a_member_not_yet_extracted_is_refused(root: Path) -> None:
    with pytest.raises(InvalidParameter, match="'later' is not an earlier member"):
        extract(root, hardlink("early", "later"), file("later", b"x"))


def test_fifos_are_allowed(root: Path) -> None:
    extract(root, device("run/initctl", tarfile.FIFOTYPE))

    assert stat.S_ISFIFO((root / "run/initctl").lstat().st_mode)


def test_modes_with_setuid_and_mtimes_are_kept(root: Path) -> None:
    extract(
        root,
        directory("usr/bin/", mode=0o755, mtime=MTIME + 5),
        file("usr/bin/su", b"su", mode=0o4755),
        file("usr/bin/wall", b"wall", mode=0o2755),
        directory("tmp/", mode=0o1777),
    )

    assert stat.S_IMODE((root / "usr/bin/su").stat().st_mode) == 0o4755
    assert stat.S_IMODE((root / "usr/bin/wall").stat().st_mode) == 0o2755
    assert stat.S_IMODE((root / "tmp").stat().st_mode) == 0o1777
    assert (root / "usr/bin/su").stat().st_mtime == MTIME
    # Set after its children were written, so their creation did not change it.
    assert (root / "usr/bin").stat().st_mtime == MTIME + 5


def test_nanosecond_mtimes_from_pax_headers_are_kept_exactly(root: Path) -> None:
    info, data = file("precise", b"x")
    info.pax_headers = {"mtime": "1700000000.123456789"}

    extract(root, (info, data))

    assert (root / "precise").stat().st_mtime_ns == 1_700_000_000_123_456_789


@needs_root
def test_owners_are_kept_and_setuid_survives_the_chown(root: Path) -> None:
    extract(
        root,
        directory("home/app/", uid=1000, gid=1000, mode=0o700),
        file("home/app/tool", b"x", uid=1000, gid=100, mode=0o4750),
        symlink("home/app/link", "tool"),
    )

    assert ((root / "home/app").stat().st_uid, (root / "home/app").stat().st_gid) == (1000, 1000)
    tool = (root / "home/app/tool").stat()
    assert (tool.st_uid, tool.st_gid, stat.S_IMODE(tool.st_mode)) == (1000, 100, 0o4750)
    assert (root / "home/app/link").lstat().st_uid == 0


def test_the_root_entry_sets_the_roots_mode(root: Path) -> None:
    extract(root, directory("./", mode=0o751), file("./etc/hostname", b"box\n"))

    assert stat.S_IMODE(root.stat().st_mode) == 0o751
    assert (root / "etc/hostname").read_bytes() == b"box\n"


def test_missing_parent_directories_are_created(root: Path) -> None:
    extract(root, file("deep/down/here.txt", b"x"))

    assert stat.S_IMODE((root / "deep/down").stat().st_mode) == 0o755
    assert (root / "deep/down/here.txt").read_bytes() == b"x"


def test_a_later_entry_replaces_an_earlier_one_of_the_same_name(root: Path) -> None:
    extract(root, file("thing", b"file"), directory("thing/"), file("thing/inside", b"x"))

    assert (root / "thing/inside").read_bytes() == b"x"


def test_extended_attributes_are_kept(root: Path) -> None:
    try:
        os.setxattr(root, "user.probe", b"1")
    except OSError:
        pytest.skip("this filesystem does not take user extended attributes")
    info, data = file("tagged", b"x")
    info.pax_headers = {"SCHILY.xattr.user.origin": "imported"}

    extract(root, (info, data))

    assert os.getxattr(root / "tagged", "user.origin") == b"imported"


def test_the_diff_id_covers_every_uncompressed_byte_including_padding(root: Path) -> None:
    archive = tar_of(file("a", b"x"))
    padded = archive + b"\0" * 4096

    assert apply_layer(io.BytesIO(padded), root) == digest(padded)


def test_an_archive_of_only_end_blocks_is_an_empty_layer(root: Path) -> None:
    empty = b"\0" * 1024

    assert apply_layer(io.BytesIO(empty), root) == digest(empty)
    assert list(root.iterdir()) == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the image archive is empty"),
        (b"this is not a tar archive" * 40, "the image archive is not a tar stream"),
        (b"\x28\xb5\x2f\xfd" + b"\xff" * 100, "cannot read the image archive"),
    ],
    ids=["empty", "garbage", "zstd"],
)
def test_streams_that_are_not_usable_archives_are_refused(root: Path, data: bytes, message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        apply_layer(io.BytesIO(data), root)


@pytest.mark.parametrize("into_header", [0, 10], ids=["at-a-header", "inside-a-header"])
def test_an_archive_cut_at_or_inside_a_header_is_refused_not_silently_shortened(root: Path, into_header: int) -> None:
    archive = tar_of(file("first", b"x" * 512), file("second", b"y"))
    # A ustar header starts with the member's name.
    cut = archive.index(b"second") + into_header

    with pytest.raises(InvalidParameter, match="truncated or corrupt"):
        apply_layer(io.BytesIO(archive[:cut]), root)


def test_layers_apply_in_order_with_whiteouts(root: Path) -> None:
    extract(
        root,
        file("etc/keep", b"1"),
        file("etc/gone", b"1"),
        directory("var/cache/"),
        file("var/cache/old", b"1"),
        directory("var/cache/sub/"),
        file("var/cache/sub/older", b"1"),
    )

    extract(
        root,
        file("etc/.wh.gone"),
        file("etc/.wh.never-existed"),
        directory("var/cache/"),
        file("var/cache/.wh..wh..opq"),
        file("var/cache/new", b"2"),
        file("etc/.wh..wh.plnk"),
    )

    assert sorted(os.listdir(root / "etc")) == ["keep"]
    assert sorted(os.listdir(root / "var/cache")) == ["new"]


def test_a_whiteout_never_removes_through_a_symlink(root: Path, outside: Path) -> None:
    (outside / "precious").write_bytes(b"x")

    with pytest.raises(InvalidParameter, match="symbolic link 'escape'"):
        extract(root, symlink("escape", str(outside)), file("escape/.wh.precious"))

    assert (outside / "precious").exists()
