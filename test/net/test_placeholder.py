import pytest

def test_placeholder():
    pytest.skip("multi-process network tests not written yet")
