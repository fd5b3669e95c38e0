"""pytest settings of the chart's tests (scripts/helm)."""


def pytest_configure(config):
    config.addinivalue_line("markers", "ground: needs a running test ground (TFSTATE_TESTGROUND_ENV)")
