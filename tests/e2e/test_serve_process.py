"""`contact-router serve` as a user runs it: embedded PostgreSQL, signals, kill -9 recovery."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import psutil
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start(var_dir: Path, port: int) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "ROUTER_ADMIN_TOKEN")}
    env["ROUTER_VAR_DIR"] = str(var_dir)
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "router", "serve", "--port", str(port), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )


async def wait_healthy(port: int, proc: asyncio.subprocess.Process, timeout_s: float = 60) -> dict[str, str]:
    async with aiohttp.ClientSession() as http:
        for _ in range(int(timeout_s * 10)):
            assert proc.returncode is None, "the server exited during start-up"
            try:
                async with http.get(f"http://127.0.0.1:{port}/v1/health") as resp:
                    if resp.status == 200:
                        return dict(await resp.json())
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("the server never became healthy")


def postmaster_running(pgdata: Path) -> bool:
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return False
    return psutil.pid_exists(int(pid_file.read_text().split()[0]))


@pytest.mark.slow
async def test_embedded_serve_survives_kill_9_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    first = await start(tmp_path, port)
    assert (await wait_healthy(port, first))["status"] == "ok"
    assert (tmp_path / "admin-token").exists() and (tmp_path / "gateway-secrets.json").exists()
    first.send_signal(signal.SIGKILL)
    await first.wait()
    assert postmaster_running(tmp_path / "pgdata")  # left running by the killed server

    second = await start(tmp_path, port)
    await wait_healthy(port, second)
    second.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(second.wait(), 30) == 0
    assert not postmaster_running(tmp_path / "pgdata"), "SIGTERM must stop the embedded PostgreSQL too"


@pytest.mark.slow
async def test_workers_share_the_port_and_stop_with_the_server(tmp_path: Path, database_url: str) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "ROUTER_ADMIN_TOKEN"}
    env.update(ROUTER_VAR_DIR=str(tmp_path), DATABASE_URL=database_url)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "router", "serve", "--port", str(port), "--workers", "2", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        await wait_healthy(port, proc)
        for _ in range(100):
            children = psutil.Process(proc.pid).children()
            if children:
                break
            await asyncio.sleep(0.1)
        assert len(children) == 1, "one extra worker process"
        async with aiohttp.ClientSession() as http:
            for _ in range(20):  # connections land on either process; all must answer
                async with http.get(f"http://127.0.0.1:{port}/v1/health") as resp:
                    assert resp.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children)


async def _run_cli(var_dir: Path, *args: str, database_url: str | None = None) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "ROUTER_ADMIN_TOKEN")}
    env["ROUTER_VAR_DIR"] = str(var_dir)
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "router", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, (out + err).decode()


@pytest.mark.parametrize("command", [("serve",), ("migrate",), ("check",)])
async def test_a_database_out_of_reach_is_one_line_naming_it(tmp_path: Path, command: tuple[str, ...]) -> None:
    closed = free_port()  # nothing listens there
    code, output = await _run_cli(tmp_path, *command,
                                  database_url=f"postgresql://router:s3cret-pw@127.0.0.1:{closed}/bank")
    assert code == 2
    assert "Traceback" not in output and "s3cret-pw" not in output
    assert (f"contact-router: cannot use the database at postgresql://router:***@127.0.0.1:{closed}/bank "
            "(DATABASE_URL): connection refused") in output


async def test_a_database_that_does_not_exist_is_named(tmp_path: Path, database_url: str) -> None:
    missing = database_url.rsplit("/", 1)[0] + "/no_such_database_here"
    code, output = await _run_cli(tmp_path, "serve", "--port", str(free_port()), database_url=missing)
    assert code == 2 and "Traceback" not in output
    assert 'database "no_such_database_here" does not exist' in output


async def test_a_port_in_use_is_said_and_nothing_is_left_running(tmp_path: Path, database_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, output = await _run_cli(tmp_path, "serve", "--port", str(port), database_url=database_url)
    assert code == 2 and "Traceback" not in output
    assert f"contact-router: cannot listen on 127.0.0.1:{port}: the address is in use" in output
    assert "contact router on http://" not in output  # the banner names an address that answers
    assert "stepped down as leader" in output  # the router it had started stopped as on a signal


@pytest.mark.parametrize("port", ["0", "65536", "80000", "-1", "eighty"])
async def test_a_port_out_of_range_is_refused_before_anything_starts(tmp_path: Path, port: str) -> None:
    code, output = await _run_cli(tmp_path, "serve", "--port", port)
    assert code == 2 and "a port is a whole number from 1 to 65535" in output
    assert not (tmp_path / "pgdata").exists()


async def test_an_embedded_database_that_cannot_start_names_its_folder_and_log(tmp_path: Path) -> None:
    (tmp_path / "pgdata").mkdir()
    (tmp_path / "pgdata" / "PG_VERSION").write_text("9\n")  # a data folder of another PostgreSQL
    code, output = await _run_cli(tmp_path, "serve", "--port", str(free_port()))
    assert code == 2 and "Traceback" not in output
    pgdata = (tmp_path / "pgdata").resolve()
    assert f"the embedded PostgreSQL in {pgdata} did not start: Version mismatch" in output
    assert f"Its log is {pgdata / 'log'}" in output
