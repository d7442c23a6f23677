from __future__ import annotations

import base64

import pytest

from imagetool.debian.cacerts import CertificateError, openssl_subject_hash, trust_store

# Made with `openssl req -x509 -utf8 -subj "/C=JP/O=  Exämple   Trust Co /CN=Mixed CASE  Root"` (twice,
# with different keys) and `-subj "/CN=Plain Root"`; the hashes are `openssl x509 -subject_hash`.
# The first subject exercises canonicalisation: a PrintableString, UTF-8 with a non-ASCII
# letter, leading, trailing and repeated spaces, and upper case.
MIXED_CASE_1 = b"""\
-----BEGIN CERTIFICATE-----
MIIB5zCCAY2gAwIBAgIUeKnw3Ib+w2XLHE/FBkZRMVsWxdkwCgYIKoZIzj0EAwIw
STELMAkGA1UEBhMCSlAxHzAdBgNVBAoMFiAgRXjDpG1wbGUgICBUcnVzdCBDbyAx
GTAXBgNVBAMMEE1peGVkIENBU0UgIFJvb3QwHhcNMjYxMTMwMDUxOTQ2WhcNMjYx
MjAxMDUxOTQ2WjBJMQswCQYDVQQGEwJKUDEfMB0GA1UECgwWICBFeMOkbXBsZSAg
IFRydXN0IENvIDEZMBcGA1UEAwwQTWl4ZWQgQ0FTRSAgUm9vdDBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABPv2d2RgBbCZ9VHAl11DHt/izeAaxZxpX2KH+P9St8V/
cKApCQLaNnmfVZgAB4FyKjHzL5B5E7Gvsn9eL2XIzUGjUzBRMB0GA1UdDgQWBBTd
hDN/cJowqkg4zE8S4QAoo79oZzAfBgNVHSMEGDAWgBTdhDN/cJowqkg4zE8S4QAo
o79oZzAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIQDcJPJWZONv
yVRi/5EJiyRR4qn11JcydP6fYtLA1dHl4gIgY0/VorbkJ0mKWFDrRJ1tfpgMDr05
Jw5zzN745LjkYgs=
-----END CERTIFICATE-----
"""
MIXED_CASE_2 = b"""\
-----BEGIN CERTIFICATE-----
MIIB5jCCAY2gAwIBAgIUWJ7h3DAPNx9pdP/ed8Alt9+VZzUwCgYIKoZIzj0EAwIw
STELMAkGA1UEBhMCSlAxHzAdBgNVBAoMFiAgRXjDpG1wbGUgICBUcnVzdCBDbyAx
GTAXBgNVBAMMEE1peGVkIENBU0UgIFJvb3QwHhcNMjYxMTMwMDUxOTQ2WhcNMjYx
MjAxMDUxOTQ2WjBJMQswCQYDVQQGEwJKUDEfMB0GA1UECgwWICBFeMOkbXBsZSAg
IFRydXN0IENvIDEZMBcGA1UEAwwQTWl4ZWQgQ0FTRSAgUm9vdDBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABILLhEGZ+tunxMh7B6Q+Sd4gSq0vV/SrfgIroJM4eiPB
VAl9s1Ne3qnPO8MIh2Ba+GsewzKpLmXShzJQ6HZpxMyjUzBRMB0GA1UdDgQWBBSs
3zGm2NlTRxmpC/a6tY7oPcw8EDAfBgNVHSMEGDAWgBSs3zGm2NlTRxmpC/a6tY7o
Pcw8EDAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0cAMEQCIHRVSRbGPXFL
eJSZWEJxkXyjgFoJU4E5Cp3/6XB/HemDAiBubfUZ+dtoDczunz8xhDW3t45LAeqF
YhxGcajwlCfcVw==
-----END CERTIFICATE-----
"""
PLAIN = b"""\
-----BEGIN CERTIFICATE-----
MIIBfzCCASWgAwIBAgIUHGVzC5ZUAhmjsJSPWAqw3MIERvQwCgYIKoZIzj0EAwIw
FTETMBEGA1UEAwwKUGxhaW4gUm9vdDAeFw0yNjExMzAwNTE5NDZaFw0yNjEyMDEw
NTE5NDZaMBUxEzARBgNVBAMMClBsYWluIFJvb3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAAQan9ULj9xL/rPAKARk3AGnjkzy59ZDtEk3dUVduHm2OhgvB3gkEnsM
dfCf/SOK2/Lig6x/nKswLqiOx98P75+Oo1MwUTAdBgNVHQ4EFgQUYvJbsFrkeg+G
0zcD3D2Xg/PQh1gwHwYDVR0jBBgwFoAUYvJbsFrkeg+G0zcD3D2Xg/PQh1gwDwYD
VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiA5t1OErMpX//fJoBbdQ1C9
MfJbhFoDQI5eeKH194IDfQIhAIWH+viPb4UKlAj37+LBbu9u2qGfrg1v29Axm79s
OsRW
-----END CERTIFICATE-----
"""


def _der(pem: bytes) -> bytes:
    return base64.b64decode(b"".join(pem.splitlines()[1:-1]))


@pytest.mark.parametrize(
    "pem, expected",
    [
        pytest.param(MIXED_CASE_1, "a33eb44d", id="canonicalised-subject"),
        pytest.param(MIXED_CASE_2, "a33eb44d", id="same-subject-other-key"),
        pytest.param(PLAIN, "fdae788a", id="plain"),
    ],
)
def test_subject_hash_matches_openssl(pem: bytes, expected: str) -> None:
    assert openssl_subject_hash(_der(pem)) == expected


def test_trust_store_is_what_update_ca_certificates_makes() -> None:
    store = trust_store(
        {
            "mozilla/Plain_Root.crt": PLAIN,
            "mozilla/Mixed (Case), 2.crt": MIXED_CASE_2.rstrip(b"\n"),
            "mozilla/Mixed_Case_1.crt": MIXED_CASE_1,
            # The same certificate twice gets one hash link, as `openssl rehash` makes.
            "other/Plain_Root_copy.crt": PLAIN,
        }
    )
    conf_lines = store.conf.decode().splitlines()
    assert conf_lines[0].startswith("# This file lists certificates")
    assert [line for line in conf_lines if not line.startswith("#")] == [
        "mozilla/Mixed (Case), 2.crt",
        "mozilla/Mixed_Case_1.crt",
        "mozilla/Plain_Root.crt",
        "other/Plain_Root_copy.crt",
    ]
    # In the order of the conf file, each certificate ending with a newline.
    assert store.bundle == MIXED_CASE_2 + MIXED_CASE_1 + PLAIN + PLAIN
    assert store.pem_links == (
        ("Mixed_=Case=__2.pem", "/usr/share/ca-certificates/mozilla/Mixed (Case), 2.crt"),
        ("Mixed_Case_1.pem", "/usr/share/ca-certificates/mozilla/Mixed_Case_1.crt"),
        ("Plain_Root.pem", "/usr/share/ca-certificates/mozilla/Plain_Root.crt"),
        ("Plain_Root_copy.pem", "/usr/share/ca-certificates/other/Plain_Root_copy.crt"),
    )
    assert store.hash_links == (
        ("a33eb44d.0", "Mixed_=Case=__2.pem"),
        ("a33eb44d.1", "Mixed_Case_1.pem"),
        ("fdae788a.0", "Plain_Root.pem"),
    )


def test_a_file_without_a_certificate_is_named() -> None:
    with pytest.raises(
        CertificateError, match="/usr/share/ca-certificates/mozilla/Empty.crt holds no PEM"
    ):
        trust_store({"mozilla/Empty.crt": b"not a certificate\n"})
