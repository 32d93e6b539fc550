#!/usr/bin/env python3
"""Connection flood for the e2e tests: open N TCP connections to ADDR (loopback only), hold
them for HOLD seconds without sending anything, and report as JSON on stdout how many were
established, refused, and closed by the server. Bounded: N sockets, HOLD + CONNECT_WAIT seconds."""
import errno, json, resource, select, socket, sys, time

def main():
    host, port = sys.argv[1].rsplit(":", 1)
    assert host.startswith("127.") or host in ("localhost", "::1"), "loopback targets only"
    n, hold = int(sys.argv[2]), float(sys.argv[3])
    connect_wait = float(sys.argv[4]) if len(sys.argv) > 4 else 20.0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ep = select.epoll()
    socks, state = {}, {}
    stats = {"attempted": n, "connected": 0, "failed": 0, "closed_by_server": 0, "open_at_end": 0,
             "max_open": 0, "errors": {}}
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        rc = s.connect_ex((host, int(port)))
        if rc not in (0, errno.EINPROGRESS):
            stats["failed"] += 1
            stats["errors"][errno.errorcode.get(rc, str(rc))] = stats["errors"].get(errno.errorcode.get(rc, str(rc)), 0) + 1
            s.close()
            continue
        socks[s.fileno()] = s
        state[s.fileno()] = "connecting"
        ep.register(s.fileno(), select.EPOLLOUT | select.EPOLLIN | select.EPOLLRDHUP)
    print(json.dumps({"phase": "started", "sockets": len(socks)}), flush=True)
    open_now = 0
    start = time.time()
    all_connected_at = None
    while socks:
        now = time.time()
        pending = sum(1 for v in state.values() if v == "connecting")
        if pending == 0 and all_connected_at is None:
            all_connected_at = now
            print(json.dumps({"phase": "connected", "open": open_now}), flush=True)
        if all_connected_at is not None and now - all_connected_at >= hold:
            break
        if now - start > connect_wait + hold:
            break
        for fd, ev in ep.poll(0.2):
            s = socks.get(fd)
            if s is None:
                continue
            if state[fd] == "connecting":
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err != 0:
                    stats["failed"] += 1
                    name = errno.errorcode.get(err, str(err))
                    stats["errors"][name] = stats["errors"].get(name, 0) + 1
                    ep.unregister(fd); s.close(); del socks[fd]; del state[fd]
                    continue
                state[fd] = "open"
                stats["connected"] += 1
                open_now += 1
                stats["max_open"] = max(stats["max_open"], open_now)
                ep.modify(fd, select.EPOLLIN | select.EPOLLRDHUP)
                if not ev & (select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR):
                    continue
            closed = bool(ev & (select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR))
            if ev & select.EPOLLIN:
                try:
                    if s.recv(65536) == b"":
                        closed = True
                except (ConnectionResetError, BrokenPipeError):
                    closed = True
                except BlockingIOError:
                    pass
            if closed:
                stats["closed_by_server"] += 1
                open_now -= 1
                ep.unregister(fd); s.close(); del socks[fd]; del state[fd]
    stats["open_at_end"] = open_now
    stats["still_connecting"] = sum(1 for v in state.values() if v == "connecting")
    for s in socks.values():
        s.close()
    print(json.dumps(stats), flush=True)

main()
