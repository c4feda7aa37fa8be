"""`make chaos`: a bounded crash-and-fault run of `clm run` with an oracle.

1. Starts ``clm run`` (the embedded default, as a user runs it) on a temporary data
   directory and free loopback ports, and a webhook sink on 127.0.0.1 that verifies every
   signature and records every request.
2. Sets it up through the public APIs only: a write key, a destination pointing at the
   sink, a send policy without caps or quiet hours, and one cart rule (``Product Added``,
   wait ``--wait`` seconds, send one email; ``Order Completed`` exits the run and is its
   goal).
3. Plays a seeded workload over the Tracking API: customers identify and add to cart at
   ``--rate`` per second; 30 % of them buy 2 s later (event time and send time), the rest
   never do. Every request is retried until it gets a 200, as a Segment client does: what
   got a 200 must not be lost. A customer's order is sent only after its add was
   acknowledged (one client queue per customer keeps order).
4. Meanwhile, spread over the workload and the waits: ``--kills`` SIGKILLs of the trigger
   engine, the messenger and ingest in turn (each killed once it is ready again; ``clm
   run`` restarts them), one SIGKILL of the broker (``--broker-restart``), a SIGSTOP/SIGCONT
   of the whole PostgreSQL server (``--pg-pause`` seconds) and a sink outage answering 503
   (``--receiver-outage`` seconds).
5. Waits until every reminder had its chance: every abandoner reached and the messenger has
   nothing pending or retrying, or nothing moved for ``--quiet`` seconds, or ``--timeout``.
6. Prints customers, abandoners (expected), delivered, missing, duplicate, wrongly sent,
   redeliveries of the same webhook-id (allowed: delivery is at least once), the kills and
   the time taken, and exits 1 on any missing, duplicate or wrongly sent reminder.

A buyer whose order was acknowledged only after its reminder was due (ingest was down for
longer than the wait less 2 s) is not judged: the engine may rightly have sent it. Such
"late buys" are counted in the table. Progress is logged to stderr as JSON lines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.chaos_faults import Fault, Faults, log, schedule
from bench.chaos_oracle import Report, Tally, judge, plan
from bench.chaos_workload import HarnessError, Workload
from bench.clmrun import ClmRun, ClmRunError
from bench.webhook_sink import WebhookSink

#: Settings the run gives ``clm run`` unless the caller's environment sets them: delivery
#: retries compressed from hours to seconds and a shorter claim lease (after a messenger
#: SIGKILL its claims are taken again when the lease ends), so a run is bounded. Neither
#: changes what is delivered, only when.
RUN_SETTINGS = {
    "CLM_RETRY_SCHEDULE": "[0, 1, 2, 3, 5, 8, 13, 20, 30, 30, 30, 30, 30, 30, 30, 30]",
    "CLM_CLAIM_LEASE_SECONDS": "20",
    "CLM_ALLOW_PRIVATE_DESTINATIONS": "true",
}
POLL = 0.2


@dataclass(frozen=True)
class Options:
    customers: int = 5000
    rate: float = 50.0
    kills: int = 15
    wait: float = 10.0
    broker_restart: bool = True
    pg_pause: float = 5.0
    receiver_outage: float = 10.0
    seed: int = 1
    timeout: float = 300.0
    quiet: float = 30.0
    keep: bool = False
    json_path: Path | None = None
    #: extra CLM_* settings for clm run
    settings: Mapping[str, str] = field(default_factory=dict)

    @property
    def workload_seconds(self) -> float:
        return self.customers / self.rate

    def faults(self) -> list[Fault]:
        """The faults, spread over the workload and the waits."""
        return schedule(
            kills=self.kills,
            broker_restart=self.broker_restart,
            pg_pause=self.pg_pause > 0,
            receiver_outage=self.receiver_outage > 0,
            until=self.workload_seconds + self.wait,
            seed=self.seed,
        )


# --- setting clm up through its public APIs --------------------------------------------------


async def call(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    expect: int,
    timeout: float = 60.0,
    **kw: Any,
) -> Any:
    """One admin request, tried again while the service is unreachable or answers 5xx."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            r = await client.request(method, url, **kw)
            if r.status_code == expect:
                return r.json()
            if r.status_code < 500:
                raise HarnessError(f"{method} {url}: {r.status_code} {r.text}")
            problem = f"{r.status_code} {r.text[:200]}"
        except httpx.HTTPError as exc:
            problem = repr(exc)
        if time.monotonic() > deadline:
            raise HarnessError(f"{method} {url} failed for {timeout:.0f}s: {problem}")
        await asyncio.sleep(POLL)


async def configure(clm: ClmRun, sink: WebhookSink, *, rule: str, wait: float) -> str:
    """Destination, send policy, rule and write key; returns the write key."""
    headers = {"Authorization": f"Bearer {clm.token}"}
    async with httpx.AsyncClient(headers=headers, timeout=15.0) as admin:
        destination = await call(
            admin,
            "POST",
            f"{clm.url('messenger')}/v1/destinations",
            expect=201,
            json={
                "channel": "email",
                "url": sink.url,
                "secret": sink.secret,
                "rate_limit_per_second": 2000,
                "max_concurrency": 32,
                "enabled": True,
            },
        )
        # No caps, no quiet hours, email opt-out: the policy never blocks a reminder.
        policy = {
            "caps": {},
            "quiet_hours": None,
            "default_timezone": "UTC",
            "consent": {
                "email": "opt_out",
                "sms": "opt_in",
                "push": "opt_out",
                "webhook": "opt_out",
            },
        }
        await call(
            admin, "PUT", f"{clm.url('trigger_engine')}/v1/send-policy", expect=200, json=policy
        )
        await call(
            admin,
            "POST",
            f"{clm.url('trigger_engine')}/v1/rules",
            expect=201,
            json={
                "key": rule,
                "name": "Cart reminder (chaos run)",
                "enabled": True,
                "trigger": {"type": "event", "event": "Product Added"},
                "audience": [{"path": "profile.traits.email", "op": "exists"}],
                "steps": [
                    {"wait": f"PT{wait:g}S"},
                    {
                        "send": {
                            "channel": "email",
                            "template": "cart_reminder",
                            "destination": destination["id"],
                        }
                    },
                ],
                "exit_when": [{"event": "Order Completed"}],
                "reentry": None,
                "goal": {"event": "Order Completed", "within": "P1D"},
            },
        )
        key = await call(
            admin,
            "POST",
            f"{clm.url('ingest')}/v1/write-keys",
            expect=201,
            json={"source": f"chaos-{rule}"},
        )
    return str(key["key"])


# --- waiting for the outcome ----------------------------------------------------------------


async def _messenger_idle(clm: ClmRun, admin: httpx.AsyncClient) -> bool:
    """Nothing pending or retrying (an unreachable messenger is not idle)."""
    for status in ("pending", "retrying"):
        try:
            r = await admin.get(
                f"{clm.url('messenger')}/v1/deliveries", params={"status": status, "limit": 1}
            )
        except httpx.HTTPError:
            return False
        if r.status_code != 200 or r.json()["items"]:
            return False
    return True


async def settle(
    clm: ClmRun,
    sink: WebhookSink,
    workload: Workload,
    faults: Faults,
    faults_task: asyncio.Task[None],
    *,
    rule: str,
    options: Options,
) -> str:
    """Wait until every reminder had its chance; returns how the wait ended."""
    deadline = time.monotonic() + options.timeout
    last_change = time.monotonic()
    last_hits = -1
    complete_since: float | None = None
    headers = {"Authorization": f"Bearer {clm.token}"}
    async with httpx.AsyncClient(headers=headers, timeout=5.0) as admin:
        while True:
            hits = sink.hits()
            tally = judge(workload.people, hits, rule=rule, late_buyers=workload.late_buyers())
            past_due = time.time() >= workload.last_due() + 2.0
            idle = await _messenger_idle(clm, admin) and await clm.ready(admin)
            moving = len(hits) != last_hits or not idle or not faults_task.done()
            if moving:
                last_hits, last_change = len(hits), time.monotonic()
            if not tally.missing and idle and past_due and faults_task.done():
                # Give a late wrong send or duplicate a bounded window to show up.
                complete_since = complete_since or time.monotonic()
                if time.monotonic() - complete_since >= 5.0:
                    return "complete"
            else:
                complete_since = None
            quiet_for = time.monotonic() - max(last_change, faults.last_at)
            if past_due and quiet_for >= options.quiet:
                return "quiet"
            if time.monotonic() > deadline:
                return "timeout"
            await asyncio.sleep(0.5)


async def diagnose(clm: ClmRun, tally: Tally, *, rule: str) -> None:
    """What the engine and the messenger say about a few customers the oracle flags."""
    headers = {"Authorization": f"Bearer {clm.token}"}
    flagged = [("missing", c) for c in tally.missing[:5]]
    flagged += [("duplicate", c) for c in tally.duplicate[:5]]
    flagged += [("wrongly_sent", c) for c in tally.wrongly_sent[:5]]
    async with httpx.AsyncClient(headers=headers, timeout=5.0) as admin:
        for why, customer in flagged:
            found: dict[str, object] = {"why": why, "customer": customer}
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                r = await admin.get(f"{clm.url('trigger_engine')}/v1/customers/{customer}")
                if r.status_code != 200:
                    found["engine"] = r.status_code
                else:
                    body = r.json()
                    found["engine"] = {
                        "cart_adds": body["metrics"]["cart_adds"],
                        "orders": body["metrics"]["orders"],
                        "runs": [
                            {"status": run["status"], "step": run["step"]}
                            for run in body["runs"]
                            if run["rule"] == rule
                        ],
                        "timers": [(t["kind"], t["release_at"]) for t in body["timers"]],
                    }
                r = await admin.get(
                    f"{clm.url('messenger')}/v1/deliveries", params={"customer_id": customer}
                )
                found["deliveries"] = [
                    {
                        "action_id": d["action_id"],
                        "status": d["status"],
                        "attempts": d["attempt_count"],
                        "last_status_code": d["last_status_code"],
                    }
                    for d in r.json()["items"]
                ]
            log("flagged", **found)


# --- the run --------------------------------------------------------------------------------


async def run(options: Options) -> Report:
    started = time.monotonic()
    work_dir = Path(tempfile.mkdtemp(prefix="clm-chaos-"))
    run_id = uuid.uuid4().hex[:8]
    rule = f"chaos-cart-{run_id}"
    people = plan(options.customers, rate=options.rate, seed=options.seed, prefix=f"c{run_id}")
    sink = WebhookSink()
    clm: ClmRun | None = None
    faults_task: asyncio.Task[None] | None = None
    report: Report | None = None
    interrupted = False
    try:
        sink.start()
        settings = {**RUN_SETTINGS, **options.settings}
        clm = ClmRun.start(work_dir, settings)
        log("clm_run_started", pid=clm.proc.pid, work_dir=str(work_dir), ports=clm.ports)
        await clm.wait_ready(timeout=180)
        key = await configure(clm, sink, rule=rule, wait=options.wait)
        log("configured", rule=rule, receiver=sink.url)

        workload = Workload(people, run=run_id, wait=options.wait)
        faults = Faults(
            clm, sink, pg_pause=options.pg_pause, receiver_outage=options.receiver_outage
        )
        plan_of_faults = options.faults()
        log(
            "workload",
            customers=len(people),
            buyers=workload.buyers,
            seconds=options.workload_seconds,
            faults=[(round(f.at, 1), f.kind, f.service) for f in plan_of_faults],
        )
        faults_task = asyncio.create_task(faults.run(plan_of_faults, time.monotonic()))
        async with httpx.AsyncClient(
            base_url=clm.url("ingest"), auth=(key, ""), timeout=10.0
        ) as client:
            await workload.play(client, timeout=options.workload_seconds + options.timeout)
        log(
            "workload_acknowledged",
            requests=workload.requests,
            retries=workload.retries,
            rejected=workload.rejected,
            late_buys=len(workload.late_buyers()),
        )
        ended = await settle(clm, sink, workload, faults, faults_task, rule=rule, options=options)
        await faults_task
        tally = judge(people, sink.hits(), rule=rule, late_buyers=workload.late_buyers())
        if workload.rejected:
            faults.errors.append(f"ingest rejected {workload.rejected} messages")
        if not tally.ok:
            await diagnose(clm, tally, rule=rule)
        report = Report(tally, dict(faults.kills), faults.done, faults.errors, ended)
    except asyncio.CancelledError:
        interrupted = True
        raise
    finally:
        if faults_task is not None and not faults_task.done():
            faults_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await faults_task
        if clm is not None:
            code = await clm.stop()
            log("clm_run_stopped", code=code)
            if report is not None and code != 0:
                report.fault_errors.append(f"clm run exited with {code} on SIGTERM")
        sink.stop()
        if options.keep or (report is None and not interrupted) or (report and not report.ok):
            log("kept", work_dir=str(work_dir))
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    assert report is not None
    report.seconds = time.monotonic() - started
    return report


def parse_args(argv: list[str] | None = None) -> Options:
    p = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n")[0])
    p.add_argument("--customers", type=int, default=5000, help="customers in the workload")
    p.add_argument("--rate", type=float, default=50.0, help="customers adding to cart per second")
    p.add_argument(
        "--kills", type=int, default=15, help="SIGKILLs, spread over engine, messenger, ingest"
    )
    p.add_argument("--wait", type=float, default=10.0, help="seconds the rule waits")
    p.add_argument(
        "--broker-restart",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="SIGKILL the embedded broker once (clm run restarts it)",
    )
    p.add_argument(
        "--pg-pause", type=float, default=5.0, help="seconds PostgreSQL is stopped (0: none)"
    )
    p.add_argument(
        "--receiver-outage",
        type=float,
        default=10.0,
        help="seconds the receiver answers 503 (0: none)",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="seconds to wait for the deliveries after the last event was acknowledged",
    )
    p.add_argument(
        "--quiet",
        type=float,
        default=30.0,
        help="stop waiting once nothing moved for this long after the last reminder was due",
    )
    p.add_argument("--keep", action="store_true", help="keep the data directory and clm run's log")
    p.add_argument("--json", type=Path, dest="json_path", help="also write the report as JSON here")
    a = p.parse_args(argv)
    if a.customers < 1 or a.rate <= 0 or a.kills < 0 or a.wait < 1:
        p.error("--customers and --wait must be at least 1, --rate positive, --kills not negative")
    return Options(
        customers=a.customers,
        rate=a.rate,
        kills=a.kills,
        wait=a.wait,
        broker_restart=a.broker_restart,
        pg_pause=a.pg_pause,
        receiver_outage=a.receiver_outage,
        seed=a.seed,
        timeout=a.timeout,
        quiet=a.quiet,
        keep=a.keep,
        json_path=a.json_path,
    )


async def _main(options: Options) -> Report:
    task = asyncio.current_task()
    assert task is not None
    # A SIGTERM ends the run like a Ctrl-C does: through every finally block.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await run(options)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    try:
        report = asyncio.run(_main(options))
    except (ClmRunError, HarnessError) as exc:
        print(f"chaos run failed: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("chaos run interrupted", file=sys.stderr)
        return 130
    print("\nchaos run")
    print(report.table())
    if options.json_path is not None:
        options.json_path.write_bytes(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
