"""The peers' own virtual environment, so that their pins never change the product's clients.

quixstreams 3 pins confluent-kafka to 2.12.x: installed beside the product
(the old `pip install -e '.[bench]'`) it silently downgraded the confluent
client that every bench then measured, so a figure for "ours on confluent"
was not the client users run. The peers run in a venv of their own under
`.state/bench-peers`, made on first use (this checkout is installed into it
too, for the job code the contestants share); our contestants run in the
product's venv. Every bench's last JSON line says which clients it ran on.
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv

from bench.peers.launch import ROOT

PEER_REQUIREMENTS = ("quixstreams>=3.20,<4", "faust-streaming>=0.11,<0.16")
PEERS_VENV = ROOT / ".state" / "bench-peers"
VERSIONS_SCRIPT = """
import importlib.metadata as m, json
found = {}
for name in ("aiokafka", "confluent-kafka", "quixstreams", "faust-streaming"):
    try:
        found[name] = m.version(name)
    except m.PackageNotFoundError:
        pass
try:
    import confluent_kafka
    found["librdkafka"] = confluent_kafka.libversion()[0]
except ImportError:
    pass
print(json.dumps(found))
"""


def peer_python() -> str:
    """The peers' interpreter, its venv made or brought up to PEER_REQUIREMENTS first."""
    python = PEERS_VENV / "bin" / "python"
    stamp = PEERS_VENV / ".requirements"
    wanted = "\n".join(PEER_REQUIREMENTS)
    if not python.exists() or not stamp.exists() or stamp.read_text() != wanted:
        print(f"installing the peers into {PEERS_VENV} (once)", file=sys.stderr, flush=True)
        venv.create(PEERS_VENV, with_pip=True, clear=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "-e", str(ROOT), *PEER_REQUIREMENTS],
            check=True,
        )
        stamp.write_text(wanted)
    return str(python)


def client_versions(python: str = sys.executable) -> dict[str, str]:
    """The Kafka clients (and peers) installed for `python`, as the bench's JSON records them."""
    answer = subprocess.run(
        [python, "-c", VERSIONS_SCRIPT], capture_output=True, text=True, check=True
    )
    found: dict[str, str] = json.loads(answer.stdout)
    return found


def versions_of_every_contestant() -> dict[str, dict[str, str]]:
    """Ours (this interpreter) and the peers' venv, when it has been made."""
    versions = {"ours": client_versions()}
    if (PEERS_VENV / "bin" / "python").exists():
        versions["peers"] = client_versions(str(PEERS_VENV / "bin" / "python"))
    return versions
