/**
 * The user-space half of the net lab's delay, jitter and reordering: a Python program (standard
 * library only) that takes the packets iptables' NFQUEUE target hands it and lets each one go on
 * after its delay.
 *
 * Why not `tc netem`: it needs the kernel's sch_netem, which many kernels built for virtual machines
 * and CI runners leave out (this project's own machines among them), while NFQUEUE (nfnetlink_queue)
 * is there wherever iptables is. One mechanism that runs everywhere beats a faster one that is
 * tested nowhere. Why Python: Node has no netlink sockets, Python's standard library does, and
 * `python3` is on every machine that runs the project.
 *
 * It reads one JSON line at a time on stdin, `{"id": n, "rules": [{"src", "dst", "delay", "jitter",
 * "reorder"}]}`, answers `ok <id>` on stdout once the rules are in force, and prints `ready` once it
 * is bound to its queue. It follows the deterministic simulation's semantics (ops/chaos/sim/network.ts):
 * a packet waits `delay` plus a uniform draw of up to `jitter`; packets of one source and
 * destination keep their order unless one is drawn for reordering (probability `reorder`), which then
 * waits an extra uniform draw of up to `delay + jitter + 20` ms and may be overtaken. A packet of a
 * pair with no rule (a fault healed while it waited) goes on at once. When stdin closes it exits, and
 * the kernel's `--queue-bypass` lets packets through unqueued.
 * @internal
 */
export const DELAYER_PY = String.raw`
import heapq, json, os, random, select, socket, struct, sys, time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
NFQA_PACKET_HDR, NFQA_VERDICT_HDR, NFQA_PAYLOAD = 1, 2, 10
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN, NFQA_CFG_MASK, NFQA_CFG_FLAGS = 1, 2, 3, 4, 5
NFQNL_CFG_CMD_BIND, NFQNL_COPY_PACKET, NFQA_CFG_F_GSO = 1, 2, 4
NF_ACCEPT = 1

queue = int(sys.argv[1])
maxlen = int(sys.argv[2])
rng = random.Random(int(sys.argv[3])) if len(sys.argv) > 3 else random.Random()
sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
try:
    sock.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE: root may pass rmem_max
except OSError:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
sock.bind((0, 0))
seq = 0


def attr(kind, data):
    return struct.pack('=HH', 4 + len(data), kind) + data + b'\0' * ((4 - len(data) % 4) % 4)


def send(msg, attrs, flags=NLM_F_REQUEST):
    global seq
    seq += 1
    body = struct.pack('=BBH', socket.AF_UNSPEC, 0, socket.htons(queue)) + b''.join(attrs)
    header = struct.pack('=IHHII', 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg, flags, seq, 0)
    sock.send(header + body)


def config(what, attrs):
    send(NFQNL_MSG_CONFIG, attrs, NLM_F_REQUEST | NLM_F_ACK)
    data = sock.recv(65536)
    kind = struct.unpack_from('=H', data, 4)[0]
    if kind == NLMSG_ERROR:
        err = struct.unpack_from('=i', data, 16)[0]
        if err != 0:
            sys.stderr.write('nfqueue %s failed: %s\n' % (what, os.strerror(-err)))
            sys.exit(1)


config('bind', [attr(NFQA_CFG_CMD, struct.pack('=BBH', NFQNL_CFG_CMD_BIND, 0, socket.htons(socket.AF_INET)))])
# Only the IPv4 header is copied: the source and destination are all the rules look at.
config('copy mode', [attr(NFQA_CFG_PARAMS, struct.pack('!IB', 20, NFQNL_COPY_PACKET))])
config('queue length', [attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack('!I', maxlen))])
# Whole GSO packets, not their segments: fewer verdicts, and nothing is changed in them.
config('flags', [attr(NFQA_CFG_FLAGS, struct.pack('!I', NFQA_CFG_F_GSO)),
                 attr(NFQA_CFG_MASK, struct.pack('!I', NFQA_CFG_F_GSO))])

rules = {}
held = []  # a heap of (release time, arrival order, packet id, pair)
last = {}
order = 0


def accept(pid):
    send(NFQNL_MSG_VERDICT, [attr(NFQA_VERDICT_HDR, struct.pack('!II', NF_ACCEPT, pid))])


def on_packet(data, pos, end):
    global order
    pid = src = dst = None
    while pos + 4 <= end:
        length, kind = struct.unpack_from('=HH', data, pos)
        if length < 4:
            break
        kind &= 0x7fff
        if kind == NFQA_PACKET_HDR:
            pid = struct.unpack_from('!I', data, pos + 4)[0]
        elif kind == NFQA_PAYLOAD and length >= 24:
            src = socket.inet_ntoa(data[pos + 16:pos + 20])
            dst = socket.inet_ntoa(data[pos + 20:pos + 24])
        pos += (length + 3) & ~3
    if pid is None:
        return
    pair = (src, dst)
    rule = rules.get(pair)
    if rule is None:
        accept(pid)
        return
    at = time.monotonic() + (rule['delay'] + rng.random() * rule['jitter']) / 1000.0
    if rule['reorder'] > 0 and rng.random() < rule['reorder']:
        at += rng.random() * (rule['delay'] + rule['jitter'] + 20) / 1000.0
    else:
        at = max(at, last.get(pair, 0.0))
        last[pair] = at
    order += 1
    heapq.heappush(held, (at, order, pid, pair))


def on_netlink():
    try:
        data = sock.recv(1 << 20)
    except BlockingIOError:
        return
    except OSError as error:
        # ENOBUFS: the socket overflowed and some packets were never reported; the kernel drops
        # them when the queue fills, as a real link's buffer would.
        sys.stderr.write('nfqueue: %s\n' % error)
        return
    pos = 0
    while pos + 16 <= len(data):
        length, kind = struct.unpack_from('=IH', data, pos)
        if length < 16:
            break
        if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            on_packet(data, pos + 20, pos + length)
        pos += (length + 3) & ~3


pending = b''


def on_stdin():
    global pending, rules
    chunk = os.read(0, 65536)
    if not chunk:
        sys.exit(0)
    pending += chunk
    while b'\n' in pending:
        line, pending = pending.split(b'\n', 1)
        message = json.loads(line)
        rules = {(r['src'], r['dst']): r for r in message['rules']}
        keep = []
        for item in held:
            if item[3] in rules:
                keep.append(item)
            else:
                accept(item[2])
        heapq.heapify(keep)
        held[:] = keep
        for pair in list(last):
            if pair not in rules:
                del last[pair]
        sys.stdout.write('ok %d\n' % message['id'])
        sys.stdout.flush()


sock.setblocking(False)
sys.stdout.write('ready\n')
sys.stdout.flush()
while True:
    timeout = max(0.0, held[0][0] - time.monotonic()) if held else None
    readable = select.select([sock, 0], [], [], timeout)[0]
    if sock in readable:
        on_netlink()
    if 0 in readable:
        on_stdin()
    now = time.monotonic()
    while held and held[0][0] <= now:
        accept(heapq.heappop(held)[2])
`;
