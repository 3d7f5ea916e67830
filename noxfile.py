"""nox sessions. On a CPU box torch==2.13.0 is installed first so nothing pulls CUDA wheels.

    nox -s tests     the default (CPU, fast) test suite
    nox -s slow      the opt-in slower CPU tests
    nox -s bench     benchmarks: harness overhead (trackers on vs off), isolation cost (launcher vs bare loop)
"""
import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True
ENV = {"HF_HUB_OFFLINE": "1"}


def _install(session: nox.Session) -> None:
    session.install("torch==2.13.0")
    session.install("-e", ".[dev]")


@nox.session
def tests(session: nox.Session) -> None:
    _install(session)
    session.run("pytest", *session.posargs, env=ENV)


@nox.session
def slow(session: nox.Session) -> None:
    _install(session)
    session.run("pytest", "-m", "slow", *session.posargs, env=ENV)


@nox.session
def bench(session: nox.Session) -> None:
    _install(session)
    session.run("python", "benchmarks/overhead.py", *session.posargs, env=ENV)
    session.run("python", "benchmarks/isolation.py", env=ENV)
