"""Kubernetes resource quantities ("24Gi", "512M", "1.5e9") parsed to exact numbers.

Only what inferbudget needs: parsing to a Decimal, and formatting bytes for people. The grammar is the
one of k8s.io/apimachinery's resource.Quantity, so a value the API server accepts parses here too.
"""

import re
from decimal import ROUND_CEILING, ROUND_UP, Context, Decimal, localcontext

_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}  # powers of two
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}  # of ten
# The shape apimachinery's parser scans: a signed number with at most one point (digits optional, so "." and
# "Gi" are zero), then a suffix of unit letters, or an exponent. Possessive: the scan does not backtrack.
_QUANTITY = re.compile(r"(?P<sign>[+-]?)(?P<whole>[0-9]*+)(?P<point>\.(?P<fraction>[0-9]*+))?+"
                       r"(?P<suffix>[eEinumkKMGTP]*+[-+]?[0-9]*+)")
_EXPONENT = re.compile(r"[eE](?P<exponent>[+-]?[0-9]+)")
_INT64_MAX = 2**63 - 1
_NANO = Decimal("1e-9")
# Exponents reach 2**31 and the coefficient 64 digits: exact arithmetic needs this room, not more.
_EXACT = Context(prec=160, Emax=2**40, Emin=-(2**40))


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity."""


def _int32(value: int) -> int:
    """Go's int32(value) of an int64: the parser keeps an exponent in 32 bits, wrapping larger ones."""
    return (value + 2**31) % 2**32 - 2**31


def _unit(suffix: str) -> tuple[int, int, bool] | None:
    """(base, exponent, is the exponent written out) of a suffix, or None when it is none of them."""
    if suffix in _DECIMAL:
        return 10, _DECIMAL[suffix], False
    if suffix in _BINARY:
        return 2, _BINARY[suffix], False
    exponent = _EXPONENT.fullmatch(suffix)
    if exponent is None or abs(int(exponent["exponent"])) > _INT64_MAX + (exponent["exponent"][0] == "-"):
        return None
    return 10, _int32(int(exponent["exponent"])), True


def _digits_needed(whole: str, fraction: str, base: int, exponent: int) -> bool:
    """Whether apimachinery takes its exact (inf.Dec) path, which needs at least one digit: a fraction of a
    binary unit, more digits than int64 holds, or a value finer than a nano. Otherwise "." and "+Ki" are 0."""
    significant, decimals = len(whole.lstrip("0") or "0"), len(fraction)
    if base == 2:
        fast = not decimals and 15 - significant - int(exponent * 3 / 10) - 1 >= 0
    else:
        fast = 18 - significant - decimals >= 0 and exponent - decimals >= -9
    return not fast


def parse_quantity(text: str | int) -> Decimal:
    """The value of a quantity in base units, as the API server computes it: parse_quantity("1Ki") == 1024.

    Its quirks are kept so that validation agrees with the API server: a value finer than a nano rounds up to
    1n (away from zero), binary-suffixed values are capped at 2**63-1, and exponents wrap at 32 bits."""
    if isinstance(text, int):
        return Decimal(text)
    match, unit = _QUANTITY.fullmatch(text), None
    if match is not None:
        unit = _unit(match["suffix"])
    whole, fraction = (match["whole"], match["fraction"] or "") if match else ("", "")
    if match is None or unit is None or not text or (
            not whole + fraction and _digits_needed(whole, fraction, unit[0], unit[1])):
        raise QuantityError(f"{text!r} is not a quantity (examples: 24Gi, 512Mi, 1.5G, 2e9)")
    base, exponent, _ = unit
    with localcontext(_EXACT):
        magnitude = Decimal(f"{whole or 0}.{fraction or 0}")
        magnitude = magnitude.scaleb(exponent) if base == 10 else magnitude * 2**exponent
        places = magnitude.as_tuple().exponent
        if magnitude and isinstance(places, int) and places < -9:
            magnitude = magnitude.quantize(_NANO, rounding=ROUND_UP)
        if base == 2:
            magnitude = min(magnitude, Decimal(_INT64_MAX))
        return -magnitude if match["sign"] == "-" else magnitude


def is_quantity(text: str) -> bool:
    try:
        parse_quantity(text)
    except QuantityError:
        return False
    return True


def parse_bytes(text: str | int) -> int:
    """A memory quantity in whole bytes (rounded up, as the kubelet does), within int64 like Kubernetes'."""
    value = max(min(parse_quantity(text), Decimal(_INT64_MAX)), Decimal(-_INT64_MAX - 1))
    with localcontext(_EXACT):
        return int(value.to_integral_value(rounding=ROUND_CEILING))


def format_bytes(value: float) -> str:
    """Bytes for people, in the binary units kubectl uses: 19327352832 -> '18Gi', 1.5 GiB -> '1.5Gi'."""
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = 2 ** _BINARY[suffix]
        if abs(value) >= unit:
            return f"{value / unit:.3g}{suffix}"
    return f"{value:.0f}"
