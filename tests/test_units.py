import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator import units


@pytest.mark.parametrize("text,kind,expected", [
    ("400 Gb/s", "bandwidth", 50e9),
    ("450 GB/s", "bandwidth", 450e9),
    ("2 TB/s", "bandwidth", 2e12),
    ("100 GiB/s", "bandwidth", 100 * 2**30),
    ("80 GiB", "size", 80 * 2**30),
    ("2.3 TB", "size", 2.3e12),
    ("700 W", "power", 700.0),
    ("2.5 kW", "power", 2500.0),
    ("15 min", "time", 900.0),
    ("54 d", "time", 54 * 86400.0),
    ("1 us", "time", 1e-6),
    ("6 h", "time", 21600.0),
    ("15.6T", "count", 15.6e12),
    ("300B", "count", 300e9),
    (2048, "count", 2048.0),
    ("989 TFLOP/s", "flops", 989e12),
    ("0.08 USD/kWh", "energy_price", 0.08 / 3.6e6),
    ("0.4 kg/kWh", "carbon_intensity", 0.4 / 3.6e6),
    ("1.2 MWh", "energy", 1.2e6 * 3600),
    ("2.5 USD", "money", 2.5),
    ("$3", "money", 3.0),
    ("90 %", "ratio", 0.9),
])
def test_parse_examples(text, kind, expected):
    assert math.isclose(units.parse(text, kind), expected, rel_tol=1e-12)


def test_bits_and_bytes_differ_by_eight():
    assert units.parse("400 GB/s", "bandwidth") == 8 * units.parse("400 Gb/s", "bandwidth")


def test_decimal_and_binary_prefixes_are_not_confused():
    assert units.parse("1 GiB", "size") / units.parse("1 GB", "size") == pytest.approx(1.073741824)


@pytest.mark.parametrize("value,kind,fragment", [
    (400, "bandwidth", "'400 Gb/s'"),          # bare number: shows an example
    ("400", "bandwidth", "no unit"),
    ("400 gb/s", "bandwidth", "unknown unit"),
    ("fast", "bandwidth", "cannot read"),
    (True, "time", "boolean"),
    ("5 parsecs", "time", "unknown unit"),
    ([1, 2], "size", "expected a size"),
])
def test_bad_quantities_explain_what_is_expected(value, kind, fragment):
    with pytest.raises(ValueError) as exc:
        units.parse(value, kind)
    assert fragment in str(exc.value)


@given(st.floats(min_value=1e-3, max_value=1e6, allow_nan=False))
def test_parse_scales_linearly(x):
    assert units.parse(f"{x!r} GB/s", "bandwidth") == pytest.approx(x * 1e9, rel=1e-12)
    assert units.parse(f"{x!r} Gb/s", "bandwidth") == pytest.approx(x * 1.25e8, rel=1e-12)
    assert units.parse(f"{x!r} min", "time") == pytest.approx(60 * x, rel=1e-12)


def test_formatting():
    assert units.fmt_duration(2.31) == "2.31 s"
    assert units.fmt_duration(95.3 * 86400) == "95.3 d"
    assert units.fmt_si(1.82e6) == "1.82 M"
    assert units.fmt_si(8.03e9, billion="B") == "8.03 B"
