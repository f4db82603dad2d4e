"""Throwaway TLS material (CA, server and client certificates) made with the openssl CLI."""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

# EC keys are generated in milliseconds, RSA would dominate TLS test setup time.
_KEY_OPTS = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
_DAYS = "2"


@dataclass(frozen=True)
class TlsMaterial:
    """Paths of a throwaway PKI: one CA, a server leaf for 127.0.0.1/localhost, a client leaf."""

    directory: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def client_kwargs(self) -> dict[str, str]:
        """redis-py keyword arguments for a mutually authenticated TLS connection."""
        return {
            "ssl_ca_certs": str(self.ca_cert),
            "ssl_certfile": str(self.client_cert),
            "ssl_keyfile": str(self.client_key),
        }


def _openssl(args: str, cwd: Path) -> None:
    # File names are relative to cwd and contain no spaces, so a plain split is exact.
    proc = subprocess.run(
        ["openssl", *args.split()], cwd=cwd, capture_output=True, text=True, timeout=30, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {args} failed:\n{proc.stderr}")


def _leaf(directory: Path, name: str, cn: str, extensions: list[str]) -> None:
    (directory / f"{name}.ext").write_text("\n".join(extensions) + "\n")
    _openssl(f"req -new {_KEY_OPTS} -keyout {name}.key -out {name}.csr -subj /CN={cn}", directory)
    _openssl(
        f"x509 -req -in {name}.csr -CA ca.crt -CAkey ca.key -set_serial 0x{secrets.token_hex(8)}"
        f" -days {_DAYS} -sha256 -extfile {name}.ext -out {name}.crt",
        directory,
    )
    (directory / f"{name}.csr").unlink()
    (directory / f"{name}.ext").unlink()


def make_tls_material(directory: Path | str) -> TlsMaterial:
    """Create a CA, a server cert (SAN IP:127.0.0.1, DNS:localhost) and a client cert."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # Explicit extensions keep the chain valid under OpenSSL's strict X.509 checks, which newer
    # Python versions enable by default.
    _openssl(
        f"req -x509 {_KEY_OPTS} -keyout ca.key -out ca.crt -days {_DAYS} -sha256"
        " -subj /CN=feats-throwaway-test-ca"
        " -addext basicConstraints=critical,CA:TRUE"
        " -addext keyUsage=critical,keyCertSign,cRLSign"
        " -addext subjectKeyIdentifier=hash",
        directory,
    )
    common = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        "subjectKeyIdentifier=hash",
        "authorityKeyIdentifier=keyid,issuer",
    ]
    _leaf(
        directory,
        "server",
        "localhost",
        [*common, "extendedKeyUsage=serverAuth", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
    )
    _leaf(directory, "client", "feats-test-client", [*common, "extendedKeyUsage=clientAuth"])
    return TlsMaterial(
        directory=directory,
        ca_cert=directory / "ca.crt",
        ca_key=directory / "ca.key",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
    )
