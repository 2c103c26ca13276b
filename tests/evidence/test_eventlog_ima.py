"""Linux IMA measurement lists: keylime's real ima-ng list, and the ascii/binary formats,
template hashes, violations and PCR 10 replay on lists built from the kernel's layout."""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atls.errors import EvidenceParseError, UnsupportedEvidenceError, VerificationError
from atls.evidence.eventlog import (
    ImaEntry,
    check_template_hashes,
    encode_ima_ascii,
    encode_ima_binary,
    ima_claims,
    ima_template_data,
    parse_ima,
    parse_ima_ascii,
    parse_ima_binary,
    replay_ima,
)


def entry(
    template: str, path: str, content: bytes, alg: str = "sha256", sig: bytes = b""
) -> ImaEntry:
    file_hash = hashlib.new(alg, content).digest()
    data = ima_template_data(template, algorithm=alg, file_hash=file_hash, path=path, signature=sig)
    hashed = data
    if template == "ima":  # digest | path zero-padded to 256 bytes
        hashed = file_hash + path.encode().ljust(256, b"\x00")
    th = hashlib.sha1(hashed).digest()
    return parse_ima_binary(encode_ima_binary([ImaEntry(10, th, template, data)]))[0]


def fold(bank: str, digests: list[bytes]) -> bytes:
    reg = bytes(hashlib.new(bank).digest_size)
    for d in digests:
        reg = hashlib.new(bank, reg + d).digest()
    return reg


@pytest.mark.vectors
def test_keylime_ima_ng_list(vectors: Path) -> None:
    raw = (vectors / "measure/keylime/ima-log-sha256").read_bytes()
    entries = parse_ima(raw)
    assert [(e.pcr, e.template_name, e.path, e.file_hash_algorithm) for e in entries] == [
        (10, "ima-ng", "boot_aggregate", "sha256"),
        (10, "ima-ng", "/data", "sha256"),
    ]
    assert entries[1].file_hash == bytes.fromhex(
        "96d7fae8adb7286a419a88f78c13d35fb782d63df654b7db56f154765698b754"
    )
    # each line's SHA-1 template hash equals SHA-1 of the ima-ng template data
    check_template_hashes(entries)
    for e in entries:
        assert hashlib.sha1(e.template_data).digest() == e.template_hash
    # the SHA-1 bank of PCR10 is the fold of the printed template hashes
    printed = [bytes.fromhex(line.split()[1]) for line in raw.decode().splitlines()]
    assert replay_ima(entries, bank="sha1") == fold("sha1", printed)
    assert replay_ima(entries, bank="sha256") == fold(
        "sha256", [hashlib.sha256(e.template_data).digest() for e in entries]
    )
    # ascii <-> binary round trips are exact
    assert encode_ima_ascii(entries).encode() == raw
    assert parse_ima(encode_ima_binary(entries)) == entries
    claims = ima_claims(entries)
    assert claims[1] == {
        "pcr": 10,
        "template": "ima-ng",
        "path": "/data",
        "algorithm": "sha256",
        "hash": "96d7fae8adb7286a419a88f78c13d35fb782d63df654b7db56f154765698b754",
        "violation": False,
    }


@pytest.mark.vectors
def test_tampered_keylime_line_is_rejected(vectors: Path) -> None:
    text = (vectors / "measure/keylime/ima-log-sha256").read_text()
    # another file hash under the same template hash
    bad = text.replace("96d7fae8", "96d7fae9")
    with pytest.raises(VerificationError) as ei:
        replay_ima(parse_ima_ascii(bad))
    assert ei.value.code == "eventlog.ima.template_hash"
    # a different path
    with pytest.raises(VerificationError):
        check_template_hashes(parse_ima_ascii(text.replace("/data", "/date")))


def test_binary_layout_by_hand() -> None:
    digest = hashlib.sha256(b"file").digest()
    d_ng = b"sha256:\x00" + digest
    n_ng = b"/bin/x\x00"
    tdata = len(d_ng).to_bytes(4, "little") + d_ng + len(n_ng).to_bytes(4, "little") + n_ng
    th = hashlib.sha1(tdata).digest()
    rec = (10).to_bytes(4, "little") + th + (6).to_bytes(4, "little") + b"ima-ng"
    rec += len(tdata).to_bytes(4, "little") + tdata
    (e,) = parse_ima_binary(rec)
    assert (e.path, e.file_hash, e.template_hash, e.template_data) == ("/bin/x", digest, th, tdata)
    assert encode_ima_binary([e]) == rec
    # big-endian kernels (without ima_canonical_fmt)
    be = (10).to_bytes(4, "big") + th + (6).to_bytes(4, "big") + b"ima-ng"
    tdata_be = len(d_ng).to_bytes(4, "big") + d_ng + len(n_ng).to_bytes(4, "big") + n_ng
    be += len(tdata_be).to_bytes(4, "big") + tdata_be
    (b,) = parse_ima_binary(be, byteorder="big")
    assert (b.pcr, b.path, b.file_hash) == (10, "/bin/x", digest)


def test_ima_template_sha1_list() -> None:
    e = entry("ima", "/usr/bin/true", b"true", alg="sha1")
    assert e.template_data[:20] == hashlib.sha1(b"true").digest()
    # binary: no template-data length for "ima", then digest, then a length-prefixed path
    raw = encode_ima_binary([e])
    assert raw[4 + 20 + 4 : 4 + 20 + 4 + 3] == b"ima" and raw[31:51] == e.template_data[:20]
    assert parse_ima(raw) == (e,)
    # ascii: "10 <thash> ima <sha1 hex> <path>"
    line = encode_ima_ascii([e])
    assert line.split()[2:] == ["ima", hashlib.sha1(b"true").hexdigest(), "/usr/bin/true"]
    assert parse_ima(line.encode()) == (e,)
    check_template_hashes([e])
    padded = hashlib.sha1(b"true").digest() + b"/usr/bin/true".ljust(256, b"\x00")
    assert replay_ima([e], bank="sha256") == fold("sha256", [hashlib.sha256(padded).digest()])


def test_ima_sig_paths_with_spaces() -> None:
    sig = bytes.fromhex("030204") + b"\x11" * 8
    with_sig = entry("ima-sig", "/opt/my file", b"a", sig=sig)
    no_sig = entry("ima-sig", "/opt/my file 0302", b"b")
    text = encode_ima_ascii([with_sig, no_sig])
    parsed = parse_ima_ascii(text)
    assert parsed == (with_sig, no_sig)
    assert parsed[0].signature == sig and parsed[0].path == "/opt/my file"
    assert parsed[1].signature is None and parsed[1].path == "/opt/my file 0302"
    check_template_hashes(parsed)


def test_violations_extend_ff() -> None:
    good = entry("ima-ng", "/a", b"a")
    viol = ImaEntry(10, bytes(20), "ima-ng", good.template_data, "sha256", good.file_hash, "/a")
    entries = [good, viol]
    check_template_hashes(entries)  # a violation has no template hash to check
    assert replay_ima(entries, bank="sha1") == fold("sha1", [good.template_hash, b"\xff" * 20])
    assert replay_ima(entries, bank="sha256") == fold(
        "sha256", [hashlib.sha256(good.template_data).digest(), b"\xff" * 32]
    )
    assert ima_claims(entries)[1]["violation"] is True
    round_trip = parse_ima_ascii(encode_ima_ascii(entries))
    assert round_trip[1].violation


def test_other_pcrs_are_skipped() -> None:
    a = entry("ima-ng", "/a", b"a")
    b = ImaEntry(11, a.template_hash, a.template_name, a.template_data, "sha256", a.file_hash, "/a")
    assert replay_ima([a, b]) == replay_ima([a])
    assert replay_ima([a, b], pcr=11) == replay_ima([a])


def test_unknown_templates() -> None:
    # binary: kept, hash checked, fields not decoded
    data = b"\x01\x02\x03"
    e = ImaEntry(10, hashlib.sha1(data).digest(), "my-tmpl", data)
    (p,) = parse_ima_binary(encode_ima_binary([e]))
    assert p == e and p.path is None
    check_template_hashes([p])
    # ascii: cannot be rebuilt
    with pytest.raises(UnsupportedEvidenceError):
        parse_ima_ascii("10 " + "00" * 20 + " my-tmpl sha256:" + "00" * 32 + " /x\n")


def test_ima_buf_binary() -> None:
    buf = b"kexec-cmdline=quiet"
    d = hashlib.sha256(buf).digest()
    fields = [b"sha256:\x00" + d, b"kexec-cmdline\x00", buf]
    tdata = b"".join(len(f).to_bytes(4, "little") + f for f in fields)
    e = ImaEntry(10, hashlib.sha1(tdata).digest(), "ima-buf", tdata)
    (p,) = parse_ima_binary(encode_ima_binary([e]))
    assert p.path == buf.hex() and p.file_hash == d


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n\n",
        "x 0000 ima-ng sha256:00 /a",
        "10 zz ima-ng sha256:00 /a",
        "10 " + "00" * 19 + " ima-ng sha256:" + "00" * 32 + " /a",
        "10 " + "00" * 20 + " ima-ng " + "00" * 32 + " /a",  # no algorithm
        "10 " + "00" * 20 + " ima-ng sha256:" + "00" * 31 + " /a",  # short digest
        "10 " + "00" * 20 + " ima-ng sha256:xyz /a",
        "10 " + "00" * 20 + " ima-ng",
        "10 " + "00" * 20 + " ima sha256:" + "00" * 32 + " /a",  # "ima" is SHA-1 only
    ],
)
def test_malformed_ascii(text: str) -> None:
    with pytest.raises(EvidenceParseError) as ei:
        parse_ima_ascii(text)
    assert ei.value.code == "eventlog.parse"


def test_malformed_binary() -> None:
    good = encode_ima_binary([entry("ima-ng", "/a", b"a")])
    cases = [
        b"",
        good[:-1],  # truncated
        good[:24] + (0).to_bytes(4, "little") + good[28:],  # empty template name
        good[:24] + (2**31).to_bytes(4, "little") + good[28:],  # absurd name length
        good[:28] + b"im\x00-ng" + good[34:],  # unprintable name
        good[:34] + (2**31).to_bytes(4, "little") + good[38:],  # absurd data length
        good + b"\x00",  # trailing garbage
    ]
    for raw in cases:
        with pytest.raises(EvidenceParseError):
            parse_ima_binary(raw)
    # template data whose fields do not add up
    e = entry("ima-ng", "/a", b"a")
    bad = ImaEntry(10, e.template_hash, "ima-ng", e.template_data + b"\x00")
    with pytest.raises(EvidenceParseError):
        parse_ima_binary(encode_ima_binary([bad]))
    nonul = ImaEntry(10, e.template_hash, "ima-ng", e.template_data[:-7] + b"\x02\x00\x00\x00/a")
    with pytest.raises(EvidenceParseError, match="NUL"):
        parse_ima_binary(encode_ima_binary([nonul]))


_paths = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\x00"),
    min_size=1,
    max_size=30,
).filter(lambda p: p.strip() == p)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["ima-ng", "ima-sig"]),
            _paths,
            st.binary(max_size=8),
            st.binary(max_size=8),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_round_trips(items: list[tuple[str, str, bytes, bytes]]) -> None:
    entries = [entry(t, p, c, sig=s if t == "ima-sig" else b"") for t, p, c, s in items]
    assert parse_ima_binary(encode_ima_binary(entries)) == tuple(entries)
    assert parse_ima_ascii(encode_ima_ascii(entries)) == tuple(entries)
    check_template_hashes(entries)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_binary_raises_only_parse_errors(data: bytes) -> None:
    with contextlib.suppress(EvidenceParseError):
        parse_ima_binary(data)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_random_text_raises_only_typed_errors(text: str) -> None:
    try:
        entries = parse_ima_ascii(text)
    except (EvidenceParseError, UnsupportedEvidenceError):
        return
    with contextlib.suppress(VerificationError, UnsupportedEvidenceError):
        replay_ima(entries)
