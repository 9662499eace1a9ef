"""A plain (non-editable) install works: the wheel carries the migrations, the schema and
the sample, and its `clipforge run` cuts the bundled sample outside the checkout."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import uuid
import venv
import zipfile
from pathlib import Path

import psycopg2
import psycopg2.extensions
import pytest
from conftest import cli_environment

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(REPO)], check=True, timeout=600)
    (built,) = out.glob("clipforge-*.whl")
    return built


def test_wheel_ships_migrations_schema_and_sample(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    migrations = sorted(n for n in names if n.startswith("clipforge/sql/") and n.endswith(".sql"))
    assert migrations and migrations == sorted(
        f"clipforge/sql/{p.name}" for p in (REPO / "sql").glob("*.sql"))
    assert "clipforge/schemas/edl.schema.json" in names
    assert "clipforge/samples/talk_en_42s.mp4" in names
    assert any(n.startswith("clipforge_cli/") for n in names)
    # every package of the library is in the wheel (the package list is explicit)
    for init in sorted((REPO / "clipforge").rglob("__init__.py")):
        assert init.relative_to(REPO).as_posix() in names, init
    assert not any(n.startswith("tests/") for n in names)


def test_installed_wheel_runs_the_sample(wheel: Path, service_urls, tmp_path: Path) -> None:
    # A fresh venv with only the wheel; its third-party packages come from the project's
    # venv (a path entry, not its .pth files, so the editable install is not seen).
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    site = Path(sysconfig.get_paths(vars={"base": str(env_dir), "platbase": str(env_dir)})
                ["purelib"])
    site.mkdir(parents=True, exist_ok=True)
    (site / "project-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    py = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, timeout=600)
    # a brand-new database, so the installed package must migrate it from its own files
    name = f"wheel_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(service_urls.database_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    try:
        env = cli_environment(service_urls, tmp_path / "home", tmp_path / "prefect",
                              CLIPFORGE_DATABASE_URL=psycopg2.extensions.make_dsn(
                                  service_urls.database_url, dbname=name))
        env.pop("PYTHONPATH", None)  # only the installed copy may be importable
        where = subprocess.run([str(py), "-c", "import clipforge, clipforge_cli; "
                                "print(clipforge.__file__)"], env=env, cwd=tmp_path,
                               capture_output=True, text=True, check=True)
        assert str(env_dir) in where.stdout, where.stdout  # the installed copy, not the repo
        sample = py.parent.parent / "lib"
        (sample_path,) = sample.glob("python*/site-packages/clipforge/samples/talk_en_42s.mp4")
        out = tmp_path / "out"
        run = subprocess.run([str(env_dir / "bin" / "clipforge"), "run", str(sample_path),
                              "--prompt", "commercial use of this voice", "--out", str(out),
                              "--no-render"], env=env, cwd=tmp_path, capture_output=True,
                             text=True, timeout=900, stdin=subprocess.DEVNULL)
        assert run.returncode == 0, run.stderr[-3000:]
        assert (out / "edl.json").is_file()
        conn = psycopg2.connect(psycopg2.extensions.make_dsn(service_urls.database_url,
                                                             dbname=name))
        try:
            with conn, conn.cursor() as cur:
                cur.execute("SELECT status FROM video_job")
                assert cur.fetchall() == [("succeeded",)]
        finally:
            conn.close()
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()
