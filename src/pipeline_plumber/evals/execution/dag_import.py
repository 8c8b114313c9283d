# mypy: disable-error-code="import-not-found"
# (Airflow lives in its own virtualenv, not in the environment that type-checks the project.)
"""Import an answer's DAG files with Airflow 3's DagBag, in the sandbox; one JSON report.

A standalone script for the Airflow virtualenv, with `airflow_venv_probe.py` copied beside it::

    python dag_import.py HOME DAG_FILE [DAG_FILE ...]

The airflow property family runs it in a `sandbox.zygote`: `warm()` imports Airflow once, and
`main()` runs in a forked, limited child per answer.

An answer's DAG may import a provider (`airflow.providers.amazon`) or a library (`boto3`)
that this Airflow does not have installed. A production deployment would; what is under test
is the DAG on Airflow 3, so such a module gets a stand-in (operators and sensors become
empty operators, everything else a permissive object) and the report names it. Only a module
the DAG file itself imports gets one, never Airflow's own optional imports, and never a
missing `airflow.*` module other than an uninstalled official provider: importing
`airflow.contrib` or `airflow.operators.bash_operator` stays an import error.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import inspect
import json
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PROVIDERS = frozenset(
    """
airbyte alibaba amazon apache apprise arangodb asana atlassian celery cloudant cncf cohere
common databricks datadog dbt dingding discord docker edge3 elasticsearch exasol fab facebook
ftp git github google grpc hashicorp http imap influxdb jdbc jenkins keycloak microsoft mongo
mysql neo4j odbc openai openfaas openlineage opensearch opsgenie oracle pagerduty papermill
pgvector pinecone postgres presto qdrant redis salesforce samba segment sendgrid sftp
singularity slack smtp snowflake sqlite ssh standard tableau telegram teradata trino vertica
weaviate yandex ydb zendesk
""".split()  # noqa: SIM905 (a list of names, one paragraph)
)


class StandIns(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Last on sys.meta_path: a stand-in for a module the DAG files import and nobody has."""

    def __init__(self, dag_files: Sequence[str]) -> None:
        self.dag_files = set(dag_files)
        self.made: set[str] = set()

    def find_spec(self, fullname: str, path: Any = None, target: Any = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if not self._from_dag_file() or not self._may_stand_in(fullname):
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def _may_stand_in(self, fullname: str) -> bool:
        parts = fullname.split(".")
        parent = ".".join(parts[:-1])
        if parent in self.made:
            return True
        if parts[0] != "airflow":
            return len(parts) == 1
        return len(parts) == 3 and parts[1] == "providers" and parts[2] in PROVIDERS

    def _from_dag_file(self) -> bool:
        frame = sys._getframe(2)
        while frame is not None:
            name = frame.f_code.co_filename
            if name in self.dag_files:
                return True
            if not name.startswith("<frozen importlib") and "importlib" not in name:
                return False
            frame = frame.f_back  # type: ignore[assignment]
        return False

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = _StandInModule(spec.name)
        module.__path__ = []
        self.made.add(spec.name)
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


class _Anything:
    """Accepts any call, attribute or operator: a hook, a client, a helper function."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> _Anything:
        return _Anything()

    def __getattr__(self, name: str) -> _Anything:
        return _Anything()


def _operator_class(name: str, base: Any) -> type:
    """An operator or sensor of `base` that keeps only the arguments `base` knows."""
    from airflow.sdk import BaseOperator

    known = set(inspect.signature(base.__init__).parameters)
    known |= set(inspect.signature(BaseOperator.__init__).parameters)
    known -= {"self", "args", "kwargs"}
    parent_init = base.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        parent_init(self, **{k: v for k, v in kwargs.items() if k in known})

    def poke(self: Any, context: Any) -> bool:
        return True

    def execute(self: Any, context: Any) -> None:
        return None

    members = {"__init__": __init__, "execute": execute, "__module__": "stand_in"}
    if "Sensor" in name:
        members["poke"] = poke
    return type(name, (base,), members)


class _StandInModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        from airflow.sdk import BaseOperator, BaseSensorOperator

        if name[:1].isupper() and ("Operator" in name or "Sensor" in name):
            value: Any = _operator_class(name, BaseSensorOperator if "Sensor" in name
                                         else BaseOperator)
        elif name[:1].isupper():
            value = type(name, (_Anything,), {})
        else:
            value = _Anything()
        setattr(self, name, value)
        return value


def warm() -> None:
    """Import Airflow once in a warm process (`sandbox.zygote`), before any DAG file: each DAG
    is then imported by a forked copy, which finds Airflow loaded."""
    import airflow_venv_probe

    airflow_venv_probe.isolated_environment(Path("home").resolve())
    import airflow  # noqa: F401
    from airflow.dag_processing.dagbag import DagBag  # noqa: F401
    from airflow.sdk import BaseOperator, BaseSensorOperator  # noqa: F401


def main(argv: Sequence[str]) -> int:
    import airflow_venv_probe

    home = Path(argv[0]).resolve()
    dag_files = [str(Path(f).resolve()) for f in argv[1:]]
    with airflow_venv_probe.stdout_to_stderr() as out:
        airflow_venv_probe.isolated_environment(home)
        import airflow

        stand_ins = StandIns(dag_files)
        sys.meta_path.append(stand_ins)
        files = []
        for dag_file in dag_files:
            bag, warnings, errors = airflow_venv_probe.parse_dag_file(Path(dag_file))
            files.append({"file": Path(dag_file).name, "dag_ids": sorted(bag.dag_ids),
                          "import_errors": [{"message": e["message"]}
                                            for e in errors["import_errors"]],
                          "warnings": [w for w in warnings if w.get("filename") == dag_file]})
        json.dump({"airflow_version": airflow.__version__, "files": files,
                   "stand_ins": sorted(stand_ins.made)}, out)
        out.write("\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
