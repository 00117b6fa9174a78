"""One JVM for all of tests/test_spark.py's dbt commands on Spark.

A dbt command on Spark (dbt-spark's session method) starts a JVM, Spark and a Hive metastore of
its own, about 7 s, and its first queries run on a cold JVM: on this project a build of the
sample takes about 33 s in a fresh process and about 13 s in one that has built before, a run
of one model about 20 s and 2.5 s. So the Spark tests send their commands to one server process
that runs them one after the other with dbt's programmatic entry (``dbtRunner``), where
dbt-spark's ``SparkSession.builder.getOrCreate()`` finds the session of the command before.

    server = SparkDbt(folder)  # the session's folder: LINE_CAPI_SPARK_DIR of every command
    server.run(["build", "--target", "spark", ...], cwd=..., env=..., stdout=f, stderr=f,
               timeout=600) -> returncode  (as tests/dbt_forkserver.py's run)

What one session for several builds means:
- The session's static settings (warehouse folder, metastore, JVM options) are those of the
  first command, so every command runs with the server's LINE_CAPI_SPARK_DIR, and each build
  keeps its tables in a schema of its own (``profile_with_schema``).
- A setting one command SETs stays for the next (``spark.sql.legacy.javaCharsets``, set by a
  build that reads Shift_JIS): no test here depends on such a setting being unset.
- If the JVM goes away, ``restart`` starts the server afresh in a new folder.

The exit code is the `dbt` script's: 0, 1 when dbt ran and something failed, 2 when it stopped
with an exception. What the JVM writes itself (Spark's log) goes to ``server.log`` in the folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SERVE = "--serve-spark-dbt"


def profile_with_schema(profile: str, schema: str) -> str:
    """The text of profiles.example.yml with the spark target's schema ``schema``."""
    line = "      schema: line_capi\n"
    assert profile.count(line) == 1, "profiles.example.yml's spark schema line has changed"
    return profile.replace(line, f"      schema: {schema}\n")


class SparkDbt:
    def __init__(self, folder: Path):
        self._base, self._starts = folder, 0
        self._start()

    @property
    def pid(self) -> int:
        """The server's process id; the JVM is its child."""
        return self._proc.pid

    @property
    def spark_dir(self) -> Path:
        """LINE_CAPI_SPARK_DIR of the current session: its warehouse, metastore and log."""
        return self._base / f"session-{self._starts}"

    def _start(self) -> None:
        self._starts += 1
        self.spark_dir.mkdir(parents=True)
        with open(self.spark_dir / "server.log", "ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, __file__, SERVE],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=self.spark_dir,
            )

    def run(self, args: list[str], *, cwd: Path, env: dict, stdout, stderr, timeout: float) -> int:
        """Run `dbt <args>` in `cwd` with exactly `env` (its LINE_CAPI_SPARK_DIR the server's);
        what dbt prints goes to ``stdout`` (the `dbt` script too writes it all there), nothing
        to ``stderr``."""
        env = {**env, "LINE_CAPI_SPARK_DIR": str(self.spark_dir)}
        with tempfile.NamedTemporaryFile(dir=self.spark_dir, suffix=".out") as out:
            request = {"args": args, "cwd": str(cwd), "env": env, "out": out.name}
            self._proc.stdin.write(json.dumps(request).encode() + b"\n")
            self._proc.stdin.flush()
            ready, _, _ = select.select([self._proc.stdout], [], [], timeout)
            answer = self._proc.stdout.readline() if ready else b""
            shutil.copyfileobj(out, stdout)
        if not answer:
            self.stop()
            raise AssertionError(
                f"the Spark dbt server {'died' if ready else 'timed out'} running dbt {args}; "
                f"its log: {self.spark_dir / 'server.log'}"
            )
        return json.loads(answer)["returncode"]

    def restart(self) -> None:
        self.stop()
        self._start()

    def stop(self) -> None:
        """End the server (its JVM ends with it)."""
        with contextlib.suppress(BrokenPipeError):
            self._proc.stdin.close()  # the server ends at the end of its input
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc.stdout.close()


def _serve() -> None:
    """In the server: run each request's dbt command in this process, one at a time."""
    from dbt.cli.main import dbtRunner
    from dbt_common.tests import enable_test_caching

    enable_test_caching()  # as in tests/dbt_forkserver.py: a full parse about 1 s instead of 2
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # stray output, and the JVM's, goes to the server's log
    for line in sys.stdin:
        request = json.loads(line)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        with open(request["out"], "w") as out:
            sys.stdout = sys.stderr = out
            try:
                result = dbtRunner().invoke(request["args"])
                # dbt has said why (`Encountered an error:`) as the `dbt` script would
                code = 0 if result.success else 2 if result.exception is not None else 1
            finally:
                sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        answers.write(json.dumps({"returncode": code}) + "\n")
        answers.flush()


if __name__ == "__main__" and sys.argv[1:] == [SERVE]:
    _serve()
