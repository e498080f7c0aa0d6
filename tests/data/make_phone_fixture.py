#!/usr/bin/env python3
"""Makes tests/data/phones.csv: 500 phone numbers as people write them, with
what libphonenumber (the Python `phonenumbers` package, the oracle) makes of
each: its E.164 form when valid, else empty.

Run again with:  pip install phonenumbers==9.0.43 && python3 tests/data/make_phone_fixture.py
Deterministic (seeded); the committed CSV is what the Rust test compares with.
"""
import csv
import os
import random

import phonenumbers
from phonenumbers import PhoneNumberFormat as F
from phonenumbers import PhoneNumberType as T

REGIONS = ["CZ", "SK", "PL", "NO", "DE", "US", "AT", "GB", "SE", "FR"]
TYPES = [T.MOBILE, T.FIXED_LINE, T.MOBILE, T.FIXED_LINE_OR_MOBILE, T.TOLL_FREE]

rng = random.Random(20261123)


def national_variant(region):
    """A random number of the region's shape: an example with its last
    digits changed (some of which stop being valid)."""
    for kind in rng.sample(TYPES, len(TYPES)):
        example = phonenumbers.example_number_for_type(region, kind)
        if example is not None:
            break
    digits = list(str(example.national_number))
    for i in range(max(1, len(digits) - rng.randint(3, 6)), len(digits)):
        digits[i] = str(rng.randint(0, 9))
    if rng.random() < 0.08:  # too short or too long
        digits = digits[:-2] if rng.random() < 0.5 else digits + ["7", "7"]
    return phonenumbers.PhoneNumber(country_code=example.country_code, national_number=int("".join(digits)))


def written(number, region):
    """How a person might write it, and the region kontakt is told."""
    cc = str(number.country_code)
    nsn = str(number.national_number)
    national = phonenumbers.format_number(number, F.NATIONAL)
    international = phonenumbers.format_number(number, F.INTERNATIONAL)
    style = rng.randint(0, 9)
    if style == 0:
        return international, ""
    if style == 1:
        # SPEC: a leading 00 always means international. libphonenumber
        # reads 00 as the international prefix only for regions whose prefix
        # it is, so the oracle is told such a region (the US uses 011).
        return "00" + cc + nsn, region if region != "US" else "GB"
    if style == 2:
        return national, region
    if style == 3:
        return nsn, region
    if style == 4:
        return international.replace(" ", "-"), ""
    if style == 5:
        return "(+" + cc + ") " + nsn, ""
    if style == 6:
        return cc + nsn, region
    if style == 7:
        return national.replace(" ", ""), region
    if style == 8:
        return "+" + cc + nsn, region
    return national.replace(" ", "."), region


def oracle(value, region):
    try:
        number = phonenumbers.parse(value, region or None)
    except phonenumbers.NumberParseException:
        return ""
    if not phonenumbers.is_valid_number(number):
        return ""
    return phonenumbers.format_number(number, F.E164)


rows = []
while len(rows) < 500:
    region = rng.choice(REGIONS)
    value, told = written(national_variant(region), region)
    rows.append((value, told, oracle(value, told)))

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "phones.csv")
with open(path, "w", newline="", encoding="utf-8") as f:
    out = csv.writer(f, lineterminator="\n")
    out.writerow(["value", "region", "expected"])
    out.writerows(rows)
valid = sum(1 for r in rows if r[2])
print(f"wrote {path}: {len(rows)} numbers, {valid} valid by libphonenumber {phonenumbers.__version__}")
