# The repository's root conftest: pytester is loaded here so generated projects can be run in-process.
pytest_plugins = ["pytester"]
