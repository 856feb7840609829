"""Image builds against the real engine: a second build with the same inputs does nothing."""

from __future__ import annotations

import subprocess
import sys

from integration.images import compute_tags
from integration.images.build import build, exists, missing


def test_second_build_is_a_no_op(docker_engine):
    tags = compute_tags()
    first = build(tags, client=docker_engine, log=lambda line: None)
    ids = {name: docker_engine.images.get(getattr(tags, name)).id for name in ("zookeeper", "meshd")}
    assert missing(tags, docker_engine) == []

    again = build(tags, client=docker_engine, log=lambda line: None)
    assert again.built == [] and again.tags == first.tags
    assert {name: docker_engine.images.get(getattr(tags, name)).id for name in ids} == ids


def test_images_carry_their_label_and_meshd_runs_as_entry_point(docker_engine, meshd_images):
    for name in ("zookeeper", "meshd") if meshd_images.source == "registry" else ("base", "zookeeper", "meshd"):
        image = docker_engine.images.get(getattr(meshd_images, name))
        if name != "zookeeper" or meshd_images.source == "local":
            assert image.labels.get("meshd.integration.image") == name
    config = docker_engine.images.get(meshd_images.meshd).attrs["Config"]
    assert config["Entrypoint"] == ["meshd"] and config["Cmd"] == ["run", "-c", "/etc/meshd/meshd.yaml"]


def test_tags_command_prints_the_computed_tags(docker_engine):
    done = subprocess.run([sys.executable, "-m", "integration.images", "tags"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    printed = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    tags = compute_tags()
    assert printed["zookeeper"] == tags.zookeeper
    assert printed.get("base") == tags.base
    assert printed["meshd"].startswith("meshd-it/meshd:")     # others may be editing sources meanwhile


def test_prune_removes_outdated_images_unless_a_container_uses_them(docker_engine, meshd_images):
    import io
    import uuid

    from integration.images.build import prune
    from integration.images.recipes import IMAGE_LABEL

    kind = f"prune-test-{uuid.uuid4().hex[:8]}"
    tag = f"meshd-it/{kind}:old"
    docker_engine.images.build(fileobj=io.BytesIO(f"FROM {meshd_images.meshd}\n".encode()), tag=tag,
                               labels={IMAGE_LABEL: kind}, network_mode="host", rm=True, forcerm=True)
    user = docker_engine.containers.create(tag, command=["version"], network="host")
    notes = []
    try:
        assert prune(meshd_images, docker_engine, log=notes.append, kinds=(kind,)) == []
        assert notes and notes[0].startswith(f"kept {tag}")
    finally:
        user.remove(force=True)
    assert prune(meshd_images, docker_engine, log=notes.append, kinds=(kind,)) == [tag]
    assert not exists(docker_engine, tag)
    assert exists(docker_engine, meshd_images.meshd)
