# The repository's root conftest: it loads pytester, with which tests run generated projects as users run
# pytest; in subprocesses (pyproject's addopts: torch cannot be imported twice in one process).
pytest_plugins = ["pytester"]
