#!/usr/bin/env python3
"""The API from another language: a Python gRPC client against real shards.

Starts 2 shards (deploy/local/shards.sh --fast) and two inventoryd instances
over them, generates the Python messages from proto/ with protoc, and checks
what a storefront written in Python relies on, through the wire format only:

  race      32 threads race for 50 units, every call sent twice under its
            request id: exactly 50 granted, each retry a replay of the same
            reservation, every refusal OUT_OF_STOCK.
  bad       bad input gets INVALID_ARGUMENT (with its ErrorInfo reason) and
            changes nothing; an unknown product gets NOT_FOUND.
  shard     a shard killed: its products answer UNAVAILABLE
            SHARD_UNAVAILABLE, the other shard's keep working; back again
            once the shard restarts.
  killed    an instance SIGKILLed mid-load: every acknowledged reservation
            exists (PENDING), and retrying the unanswered request ids
            through the other instance reserves each exactly once.

Every check ends with VerifyInventory: no drift on any shard.

  acceptance_test.py --inventoryd PATH [--repo DIR]

Exit 0 when all checks pass, 1 otherwise (each failure is printed).
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import grpc

FAILURES = []


def check(condition, message):
    if not condition:
        FAILURES.append(message)
        print(f"FAIL: {message}", flush=True)
    return condition


class Api:
    """Unary calls of inventory.v1 through one channel, by method path."""

    def __init__(self, pb, address):
        self.pb = pb
        self.channel = grpc.insecure_channel(address)

    def call(self, service, method, request, response_type, timeout=5.0):
        rpc = self.channel.unary_unary(
            f"/inventory.v1.{service}/{method}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_type.FromString)
        return rpc(request, timeout=timeout)

    def reserve(self, request_id, product_id, quantity=1, customer="py"):
        req = self.pb.inv.ReserveItemRequest(
            request_id=request_id, product_id=product_id, quantity=quantity,
            customer_id=customer)
        return self.call("InventoryService", "ReserveItem", req,
                         self.pb.inv.ReserveItemResponse)

    def create(self, product_id, total):
        req = self.pb.inv.CreateProductRequest(
            product_id=product_id, total_quantity=total)
        return self.call("InventoryService", "CreateProduct", req,
                         self.pb.inv.Product)

    def product(self, product_id):
        req = self.pb.inv.GetProductRequest(product_id=product_id)
        return self.call("InventoryService", "GetProduct", req,
                         self.pb.inv.Product)

    def reservation(self, reservation_id):
        req = self.pb.inv.GetReservationRequest(reservation_id=reservation_id)
        return self.call("InventoryService", "GetReservation", req,
                         self.pb.inv.Reservation)

    def verify(self):
        return self.call("AdminService", "VerifyInventory",
                         self.pb.inv.VerifyInventoryRequest(),
                         self.pb.inv.VerifyInventoryResponse, timeout=60.0)


def reason_of(pb, error):
    """The ErrorInfo reason in a gRPC error's status details, or ''."""
    for key, value in error.trailing_metadata() or ():
        if key != "grpc-status-details-bin":
            continue
        status = pb.status.Status.FromString(value)
        for detail in status.details:
            if detail.Is(pb.details.ErrorInfo.DESCRIPTOR):
                info = pb.details.ErrorInfo()
                detail.Unpack(info)
                return info.reason
    return ""


class Protos:
    """Python modules generated from proto/ into a temporary folder."""

    def __init__(self, repo, out):
        proto = os.path.join(repo, "proto")
        os.makedirs(out, exist_ok=True)
        subprocess.run(
            ["protoc", f"-I{proto}", f"--python_out={out}",
             "inventory/v1/inventory.proto", "google/rpc/status.proto",
             "google/rpc/error_details.proto"],
            check=True, cwd=proto)
        sys.path.insert(0, out)
        # The generated google/rpc modules must win over any installed ones.
        for name in [m for m in sys.modules if m.startswith("google.rpc")]:
            del sys.modules[name]
        import importlib
        self.inv = importlib.import_module("inventory.v1.inventory_pb2")
        self.status = importlib.import_module("google.rpc.status_pb2")
        self.details = importlib.import_module("google.rpc.error_details_pb2")


class Inventoryd:
    def __init__(self, binary, dsns, work, name):
        self.port_file = os.path.join(work, f"{name}.port")
        self.log = open(os.path.join(work, f"{name}.log"), "w")
        env = dict(os.environ, INVENTORY_SHARDS=dsns)
        self.proc = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--port_file", self.port_file,
             "--log_rpcs=false"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.name = name
        self.address = None

    def wait_ready(self):
        """Waits for the bound port (the caller stops the process anyway)."""
        name = self.name
        until = time.time() + 30
        while time.time() < until:
            if os.path.exists(self.port_file) and os.path.getsize(self.port_file):
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"inventoryd {name} exited at start")
            time.sleep(0.05)
        with open(self.port_file) as f:
            self.address = f"127.0.0.1:{f.read().strip()}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def wait_served(api, product_id, total, seconds=30):
    """Creates the product once the shard serves (retrying UNAVAILABLE)."""
    until = time.time() + seconds
    while True:
        try:
            return api.create(product_id, total)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.ALREADY_EXISTS:
                return api.product(product_id)
            if time.time() > until or e.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            time.sleep(0.2)


def check_race(pb, api):
    product, stock = 1000, 50  # shard 0
    wait_served(api, product, stock)
    granted = []
    lock = threading.Lock()

    def shopper(t):
        for i in range(8):
            rid = f"race-{t}-{i}"
            answers = []
            for _ in range(2):  # the call, then its retry
                try:
                    answers.append(api.reserve(rid, product))
                except grpc.RpcError as e:
                    answers.append(e)
            first, retry = answers
            if isinstance(first, grpc.RpcError):
                check(first.code() == grpc.StatusCode.FAILED_PRECONDITION
                      and reason_of(pb, first) == "OUT_OF_STOCK",
                      f"race {rid}: refused with {first.code()} "
                      f"{reason_of(pb, first)!r}, not OUT_OF_STOCK")
                check(isinstance(retry, grpc.RpcError)
                      and reason_of(pb, retry) == "OUT_OF_STOCK",
                      f"race {rid}: refused, then its retry was not")
                continue
            check(not first.replayed, f"race {rid}: first answer replayed")
            ok = (not isinstance(retry, grpc.RpcError) and retry.replayed and
                  retry.reservation.reservation_id ==
                  first.reservation.reservation_id)
            check(ok, f"race {rid}: retry was not a replay of the same hold")
            with lock:
                granted.append(first.reservation.reservation_id)

    threads = [threading.Thread(target=shopper, args=(t,)) for t in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    p = api.product(product)
    check(len(granted) == stock, f"race: {len(granted)} granted of {stock}")
    check(len(set(granted)) == len(granted), "race: a reservation id twice")
    check(p.reserved_quantity == stock and p.available_quantity == 0,
          f"race: product reserved {p.reserved_quantity}, "
          f"available {p.available_quantity}")
    print(f"race: {len(granted)} of 256 granted, retries replayed", flush=True)


def check_bad_input(pb, api):
    product = 1002  # shard 0
    wait_served(api, product, 10)
    cases = [("no request id", dict(request_id="", product_id=product,
                                    quantity=1, customer="py")),
             ("quantity 0", dict(request_id="bad-q0", product_id=product,
                                 quantity=0, customer="py")),
             ("negative product", dict(request_id="bad-neg", product_id=-5,
                                       quantity=1, customer="py")),
             ("no customer", dict(request_id="bad-cust", product_id=product,
                                  quantity=1, customer=""))]
    for name, args in cases:
        try:
            api.reserve(**args)
            check(False, f"bad input ({name}) was accepted")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.INVALID_ARGUMENT and
                  reason_of(pb, e) != "",
                  f"bad input ({name}): {e.code()} reason "
                  f"{reason_of(pb, e)!r}")
    try:
        api.reserve("bad-unknown", 999999998)
        check(False, "an unknown product was reserved")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.NOT_FOUND,
              f"unknown product: {e.code()}")
    p = api.product(product)
    check(p.reserved_quantity == 0 and p.available_quantity == 10,
          f"bad input changed the product: reserved {p.reserved_quantity}")
    print("bad input: refused, nothing changed", flush=True)


def check_shard_down(pb, api, shards):
    up, down = 1004, 1005  # shard 0, shard 1
    wait_served(api, up, 100)
    wait_served(api, down, 100)
    shards("kill", "--shard", "1")
    try:
        reason, until = "", time.time() + 15
        while reason != "SHARD_UNAVAILABLE" and time.time() < until:
            try:
                api.reserve(f"down-{time.time()}", down)
            except grpc.RpcError as e:
                reason = reason_of(pb, e)
                check(e.code() in (grpc.StatusCode.UNAVAILABLE,
                                   grpc.StatusCode.DEADLINE_EXCEEDED),
                      f"shard down: {e.code()}")
        check(reason == "SHARD_UNAVAILABLE",
              f"shard down: last reason {reason!r}, not SHARD_UNAVAILABLE")
        start = time.time()
        try:
            api.reserve("down-fast", down)
            check(False, "a product of the killed shard was reserved")
        except grpc.RpcError as e:
            check(time.time() - start < 1.0 and
                  reason_of(pb, e) == "SHARD_UNAVAILABLE",
                  f"shard down: answered {reason_of(pb, e)!r} after "
                  f"{time.time() - start:.2f} s")
        for i in range(20):
            check(api.reserve(f"up-{i}", up).reservation.product_id == up,
                  "the other shard's product was not reserved")
    finally:
        try:
            shards("start-shard", "--shard", "1")
        except subprocess.CalledProcessError as e:
            check(False, f"shard down: start-shard failed: {e}")
    wait_served(api, down, 100)
    until = time.time() + 30
    while True:
        try:
            api.reserve("down-back", down)
            break
        except grpc.RpcError as e:
            if time.time() > until:
                check(False, f"shard 1 not served again: {e.code()}")
                break
            time.sleep(0.2)
    print("shard down: refused at once, others served, back after restart",
          flush=True)


def check_killed_mid_flight(pb, a, api_a, api_b):
    product = 1006  # shard 0
    wait_served(api_b, product, 100000)
    acked, unknown = [], []
    lock = threading.Lock()
    stop = threading.Event()

    def client(t):
        i = 0
        while not stop.is_set() and i < 2000:
            rid = f"kill-{t}-{i}"
            i += 1
            try:
                r = api_a.reserve(rid, product)
                with lock:
                    acked.append((rid, r.reservation.reservation_id))
            except grpc.RpcError:
                with lock:
                    unknown.append(rid)
                return

    threads = [threading.Thread(target=client, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    until = time.time() + 20
    while len(acked) < 200 and time.time() < until:
        time.sleep(0.005)
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait()
    stop.set()
    for t in threads:
        t.join()
    check(len(acked) >= 200, f"killed: only {len(acked)} acknowledged")
    check(len(unknown) > 0, "killed: the load ended before the kill")
    for rid, reservation_id in acked:
        r = api_b.reservation(reservation_id)
        check(r.request_id == rid and r.status == pb.inv.RESERVATION_STATUS_PENDING,
              f"killed: acknowledged {rid} is not a PENDING hold")
    replayed = 0
    for rid in unknown:
        r = api_b.reserve(rid, product)
        replayed += r.replayed
    p = api_b.product(product)
    check(p.reserved_quantity == len(acked) + len(unknown),
          f"killed: reserved {p.reserved_quantity}, expected "
          f"{len(acked)} acknowledged + {len(unknown)} retried")
    print(f"killed: {len(acked)} acknowledged all exist; {len(unknown)} "
          f"unknown retried through B ({replayed} were replays)", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventoryd", required=True)
    parser.add_argument("--repo", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    args = parser.parse_args()
    repo = os.path.abspath(args.repo)
    work = tempfile.mkdtemp(prefix="inventory-pyclient-")
    os.chmod(work, 0o755)
    shards_sh = os.path.join(repo, "deploy", "local", "shards.sh")

    def shards(*words):
        return subprocess.run(
            [shards_sh, words[0], "--dir", os.path.join(work, "shards"),
             *words[1:]], check=True, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True).stdout.strip()

    servers = []
    try:
        pb = Protos(repo, os.path.join(work, "py"))
        dsns = shards("start", "--count", "2", "--fast")
        a = Inventoryd(args.inventoryd, dsns, work, "a")
        servers.append(a)
        b = Inventoryd(args.inventoryd, dsns, work, "b")
        servers.append(b)
        a.wait_ready()
        b.wait_ready()
        api_a, api_b = Api(pb, a.address), Api(pb, b.address)
        for name, run in [
                ("race", lambda: check_race(pb, api_a)),
                ("bad", lambda: check_bad_input(pb, api_b)),
                ("shard", lambda: check_shard_down(pb, api_b, shards)),
                ("killed", lambda: check_killed_mid_flight(pb, a, api_a, api_b))]:
            try:
                run()
            except grpc.RpcError as e:
                check(False, f"{name}: unexpected {e.code()}: {e.details()}")
            drift = api_b.verify()
            check(len(drift.drifts) == 0 and len(drift.unreachable_shards) == 0,
                  f"{name}: VerifyInventory found {len(drift.drifts)} drifts, "
                  f"{len(drift.unreachable_shards)} unreachable shards")
    finally:
        for s in servers:
            s.stop()
        subprocess.run([shards_sh, "destroy", "--dir",
                        os.path.join(work, "shards")],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)
    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed", flush=True)
        return 1
    print("all checks passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
