"""Kubernetes resource quantities ("24Gi", "512M", "1.5e9") parsed to exact numbers.

Only what inferbudget needs: parsing to a Decimal, and formatting bytes for people. The grammar is the
one of k8s.io/apimachinery's resource.Quantity, so a value the API server accepts parses here too.
"""

import re
from decimal import Decimal, InvalidOperation

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
            "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
            "P": Decimal("1e15"), "E": Decimal("1e18")}
_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity."""


def is_quantity(text: str) -> bool:
    return _QUANTITY.match(text) is not None


def parse_quantity(text: str | int) -> Decimal:
    """The value of a quantity in base units: parse_quantity("1Ki") == 1024."""
    if isinstance(text, int):
        return Decimal(text)
    match = _QUANTITY.match(text.strip())
    if match is None:
        raise QuantityError(f"{text!r} is not a quantity (examples: 24Gi, 512Mi, 1.5G, 2e9)")
    number, suffix = Decimal(match["number"]), match["suffix"] or ""
    try:
        if suffix in _BINARY:
            return number * _BINARY[suffix]
        if suffix in _DECIMAL:
            return number * _DECIMAL[suffix]
        return number * Decimal(10) ** int(suffix[1:])
    except InvalidOperation as error:  # an exponent too large for Decimal
        raise QuantityError(f"{text!r} is out of range") from error


def parse_bytes(text: str | int) -> int:
    """A memory quantity in whole bytes (rounded up, as the kubelet does)."""
    value = parse_quantity(text)
    return int(value.to_integral_value(rounding="ROUND_CEILING"))


def format_bytes(value: float) -> str:
    """Bytes for people, in the binary units kubectl uses: 19327352832 -> '18Gi', 1.5 GiB -> '1.5Gi'."""
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = _BINARY[suffix]
        if abs(value) >= unit:
            return f"{value / unit:.3g}{suffix}"
    return f"{value:.0f}"
