"""The Kafka broker's jars: found through Maven, and the Java that runs them.

There is no Docker engine or Kafka tarball on the machines this project
targets, only Java and Maven. Maven resolves `org.apache.kafka:kafka_2.13`
(files/pom.xml, package data) into its own cache (~/.m2); the resulting classpath is
kept per pom, so later starts need neither network nor Maven's start-up.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from pipeline.errors import InfraError

KAFKA_POM = Path(__file__).parent / "files" / "pom.xml"


def java_executable() -> str:
    """Java from JAVA_HOME if set, else PATH, with an actionable error."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise InfraError(
            "Java was not found (JAVA_HOME unset and no `java` on PATH). Kafka 4.x "
            "needs Java 17 or newer: `apt-get install openjdk-17-jre-headless`, "
            "or point JAVA_HOME at a JDK."
        )
    return found


def maven_executable() -> str:
    found = shutil.which("mvn")
    if found is None:
        raise InfraError(
            "Maven (`mvn`) was not found on PATH. It fetches the Kafka jars from "
            "Maven Central on first use: `apt-get install maven`."
        )
    return found


def resolve_classpath(cache_dir: Path, progress: Callable[[str], None] | None = None) -> str:
    """The broker's classpath, resolved by Maven once per pom and cached.

    The cache key is the pom's content, so bumping the Kafka version in
    the pom re-resolves; a classpath whose jars have vanished
    (a wiped ~/.m2) is resolved again instead of failing at broker start.
    """
    pom = KAFKA_POM
    if not pom.exists():
        raise InfraError(f"Kafka pom not found at {pom}; is this a full checkout of the project?")
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:16]
    cached = cache_dir / f"kafka-classpath-{digest}.txt"
    if cached.exists():
        classpath = cached.read_text().strip()
        if classpath and all(Path(jar).exists() for jar in classpath.split(os.pathsep)):
            return classpath
    cache_dir.mkdir(parents=True, exist_ok=True)
    if progress:
        progress("resolving Kafka jars with Maven (first run downloads ~80 MB)")
    output = cache_dir / f"kafka-classpath-{digest}.tmp"
    command = [
        maven_executable(),
        "-q",
        "-B",
        "-f",
        str(pom),
        "dependency:build-classpath",
        f"-Dmdep.outputFile={output}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not output.exists():
        raise InfraError(
            "Maven could not resolve the Kafka jars "
            f"(exit {result.returncode}). Check that Maven Central is reachable.\n"
            + (result.stdout + result.stderr)[-3000:]
        )
    output.replace(cached)
    return cached.read_text().strip()
