"""The throwaway PostgreSQL cluster, against the real server binaries.

No skips: CI has PostgreSQL 15, and a machine without it must fail here with the install hint.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pipeline_plumber import pgcluster
from pipeline_plumber.errors import EnvironmentProblem
from pipeline_plumber.pgcluster import fresh_database, throwaway_cluster

pytestmark = pytest.mark.engines  # throwaway PostgreSQL clusters


@pytest.fixture(scope="module")
def dsn() -> Iterator[str]:
    """One cluster for the tests that only read from it."""
    with throwaway_cluster() as dsn:
        yield dsn


def scalar(dsn: str, query: str) -> object:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def test_server_is_postgresql_15_or_newer(dsn: str) -> None:
    version = str(scalar(dsn, "SELECT version()"))
    assert version.startswith("PostgreSQL "), version
    assert int(str(scalar(dsn, "SHOW server_version_num"))) >= 150000, version


def test_settings_are_for_throwaway_use(dsn: str) -> None:
    assert scalar(dsn, "SHOW TimeZone") == "UTC"
    assert scalar(dsn, "SHOW fsync") == "off"
    assert scalar(dsn, "SHOW synchronous_commit") == "off"
    assert scalar(dsn, "SHOW full_page_writes") == "off"
    assert scalar(dsn, "SHOW server_encoding") == "UTF8"
    assert scalar(dsn, "SHOW listen_addresses") == "127.0.0.1"


def test_cluster_is_not_owned_by_root(dsn: str) -> None:
    data_directory = Path(str(scalar(dsn, "SHOW data_directory")))
    owner = data_directory.stat().st_uid
    assert owner == os.geteuid() or os.geteuid() == 0
    assert owner != 0, "initdb must have run as an unprivileged account"


def test_root_falls_back_to_nobody_without_a_postgres_account(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pgcluster, "UNPRIVILEGED_ACCOUNTS", ("no-such-account-zz", "nobody"))
    expected = pwd.getpwnam("nobody").pw_uid if os.geteuid() == 0 else os.geteuid()
    with throwaway_cluster() as dsn:
        data_directory = Path(str(scalar(dsn, "SHOW data_directory")))
        assert data_directory.stat().st_uid == expected


def test_password_is_required(dsn: str) -> None:
    without = psycopg.conninfo.conninfo_to_dict(dsn)
    without.pop("password")
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(psycopg.conninfo.make_conninfo("", **without)).close()


def test_fresh_databases_are_isolated_and_dropped(dsn: str) -> None:
    with fresh_database(dsn) as first, fresh_database(dsn) as second:
        first_name = scalar(first, "SELECT current_database()")
        assert first_name != scalar(second, "SELECT current_database()")
        with psycopg.connect(first) as conn:
            conn.execute("CREATE TABLE orders (id int)")
        assert scalar(first, "SELECT to_regclass('orders') IS NOT NULL") is True
        assert scalar(second, "SELECT to_regclass('orders') IS NOT NULL") is False
        assert scalar(second, "SELECT count(*) FROM pg_class WHERE relname = 'orders'") == 0
        lingering = psycopg.connect(first)  # an example that forgot to close its connection
    try:
        names = scalar(dsn, "SELECT array_agg(datname::text) FROM pg_database")
        assert isinstance(names, list)
        assert first_name not in names
    finally:
        lingering.close()


def test_everything_is_removed_on_exit() -> None:
    with throwaway_cluster(settings={"work_mem": "'7MB'"}) as dsn:
        assert scalar(dsn, "SHOW work_mem") == "7MB"
        root = Path(str(scalar(dsn, "SHOW data_directory"))).parent
        assert root.is_dir()
    assert not root.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn, connect_timeout=2).close()


def test_everything_is_removed_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError, match="example failed"), throwaway_cluster() as dsn:
        root = Path(str(scalar(dsn, "SHOW data_directory"))).parent
        raise RuntimeError("example failed")
    assert not root.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn, connect_timeout=2).close()


def test_missing_binaries_say_what_to_install(tmp_path: Path) -> None:
    (tmp_path / "pg_ctl").write_text("#!/bin/sh\n")  # a lone pg_ctl is not a server install
    (tmp_path / "pg_ctl").chmod(0o755)
    with pytest.raises(EnvironmentProblem) as caught, throwaway_cluster(search_dirs=[tmp_path]):
        pytest.fail("the cluster must not start without initdb")
    message = str(caught.value)
    assert "initdb" in message
    assert "apt-get install postgresql" in message
    assert "\n" not in message


def test_the_server_environment_has_no_key_of_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    canary = "sk-ant-api03-pgcluster-Canary-7Hq2"
    monkeypatch.setenv("ANTHROPIC_API_KEY", canary)
    monkeypatch.setenv("HOME", "/root/secret-home")
    with throwaway_cluster() as dsn:
        data_directory = Path(str(scalar(dsn, "SHOW data_directory")))
        pid = int((data_directory / "postmaster.pid").read_text(encoding="utf-8").split()[0])
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        names = sorted(item.split(b"=")[0].decode() for item in environ if item)
        assert b"ANTHROPIC_API_KEY=" + canary.encode() not in environ
        assert names == ["LANG", "LC_ALL", "PATH", "TZ"]
        limits = Path(f"/proc/{pid}/limits").read_text(encoding="utf-8")
        assert re.search(r"Max address space\s+2147483648", limits), limits
        assert scalar(dsn, "SHOW temp_file_limit") == "2GB"


CHILD = """
import sys, time
from pipeline_plumber.pgcluster import throwaway_cluster
import psycopg
with throwaway_cluster() as dsn:
    with psycopg.connect(dsn) as conn:
        print(conn.execute("SHOW data_directory").fetchone()[0], flush=True)
    time.sleep(120)
"""


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_termination_signals_remove_the_cluster(number: int) -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        data_directory = Path(child.stdout.readline().strip())
        assert data_directory.is_dir()
        child.send_signal(number)
        child.wait(timeout=60)
    finally:
        child.kill()
    assert not data_directory.parent.exists()


def test_stale_folders_of_dead_runs_are_removed_and_nothing_else(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no longer runs
    stale = tmp_path / "plumber-pg-dead"
    (stale / "data").mkdir(parents=True)
    (stale / pgcluster.OWNER_MARKER).write_text(f"{dead.pid} 12345", encoding="utf-8")
    alive = tmp_path / "plumber-pg-alive"
    alive.mkdir()
    (alive / pgcluster.OWNER_MARKER).write_text(
        pgcluster._owner_mark(os.getpid()) or "", encoding="utf-8")
    unmarked = tmp_path / "plumber-pg-unmarked"
    unmarked.mkdir()
    other = tmp_path / "someone-else"
    other.mkdir()
    (other / pgcluster.OWNER_MARKER).write_text(f"{dead.pid} 12345", encoding="utf-8")
    assert pgcluster.remove_stale_clusters(tmp_path) == [stale]
    assert not stale.exists()
    assert alive.is_dir() and unmarked.is_dir() and other.is_dir()


def test_other_roles_reach_only_their_own_database(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE ROLE lonely LOGIN PASSWORD 'pw'")
        conn.execute("CREATE DATABASE lonely OWNER lonely")
    own = psycopg.conninfo.make_conninfo(dsn, user="lonely", password="pw", dbname="lonely")
    assert scalar(own, "SELECT current_user") == "lonely"
    with pytest.raises(psycopg.OperationalError, match=r"no pg_hba\.conf entry"):
        psycopg.connect(psycopg.conninfo.make_conninfo(own, dbname="postgres")).close()


def test_clusters_go_where_the_environment_says(monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = Path(tempfile.mkdtemp(prefix="plumber-test-storage-"))
    chosen.chmod(0o755)  # the cluster's account must enter it
    monkeypatch.setenv(pgcluster.STORAGE_ENV, str(chosen))
    try:
        with throwaway_cluster() as dsn:
            data_directory = Path(str(scalar(dsn, "SHOW data_directory")))
        assert data_directory.parent.parent == chosen.resolve()
        assert list(chosen.iterdir()) == []
    finally:
        shutil.rmtree(chosen, ignore_errors=True)


def test_memory_backed_storage_is_used_only_when_roomy_and_open_to_all(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder on a disk is never taken for memory; a tmpfs is, with room, when every user
    can create folders in it (the cluster's account is not root)."""
    monkeypatch.delenv(pgcluster.STORAGE_ENV, raising=False)
    monkeypatch.setattr(pgcluster, "MEMORY_BACKED", tmp_path)  # pytest's folder: a disk
    assert pgcluster.cluster_storage() != tmp_path
    shm = Path("/dev/shm")  # a tmpfs on every Linux machine CI runs on
    monkeypatch.setattr(pgcluster, "MEMORY_BACKED", shm)
    monkeypatch.setattr(pgcluster, "MEMORY_BACKED_MIN_FREE", 0)
    assert pgcluster.cluster_storage() == shm
    monkeypatch.setattr(pgcluster, "MEMORY_BACKED_MIN_FREE", 1 << 60)
    assert pgcluster.cluster_storage() != shm
