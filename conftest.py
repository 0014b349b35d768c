"""Repository-wide pytest options (shared by tests/ and benchmarks/)."""


def pytest_addoption(parser):
    parser.addoption(
        "--quick", action="store_true", default=False,
        help="run benchmarks as small smoke runs (what CI does); without it they run at full size",
    )
