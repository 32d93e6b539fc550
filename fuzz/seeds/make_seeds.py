# Writes the seed inputs of each fuzz target (see make_seeds.sh, which makes the MP4 inputs).
import struct, os, sys
out = sys.argv[1]
def boxes(b):
    at = 0; r = []
    while at < len(b):
        size, kind = struct.unpack('>I4s', b[at:at+8])
        r.append((kind, b[at:at+size])); at += size
    return r
def write(target, name, data):
    d = os.path.join(out, target); os.makedirs(d, exist_ok=True)
    open(os.path.join(d, name), 'wb').write(data)
def u16(n): return struct.pack('>H', n)
# ts_remux: [flags][u16 init][init][u16 part][part]...
for f in ['avc.mp4', 'hevc.mp4', 'aac.mp4']:
    bx = boxes(open(f, 'rb').read())
    init = b''.join(d for k, d in bx if k in (b'ftyp', b'moov'))
    parts = []; cur = b''
    for k, d in bx:
        if k == b'moof':
            if cur: parts.append(cur)
            cur = d
        elif k == b'mdat' and cur:
            cur += d
    if cur: parts.append(cur)
    assert len(init) < 65536 and all(len(p) < 65536 for p in parts), f
    whole = bytes([2]) + u16(len(init)) + init + b''.join(u16(len(p)) + p for p in parts)
    write('ts_remux', f + '.all', whole)
    for i, p in enumerate(parts[:3]):
        write('ts_remux', f'{f}.part{i}', bytes([3 + 2 * i]) + u16(len(init)) + init + u16(len(p)) + p)
# relay_frame: [max sel][piece-1][gop header][frames]
def frame(kind, flags, ts, payload):
    return struct.pack('>BBII', kind, flags, ts, len(payload)) + payload
gop = struct.pack('>QQ', 7, 1)
frames = frame(3, 2, 0, b'\x02\x00\x0aonMetaData') + frame(2, 3, 0, b'\x17\x00\x00\x00\x00\x01\x64') + \
    frame(1, 2, 0, b'\xaf\x00\x11\x90') + frame(2, 1, 40, b'\x17\x01' + b'x' * 30) + frame(3, 4, 40, bytes(68)) + \
    frame(1, 0, 41, b'\xaf\x01abc') + frame(2, 0, 80, b'\x27\x01yy')
write('relay_frame', 'gop', bytes([0, 6]) + gop + frames)
write('relay_frame', 'gop-small-max', bytes([3, 0]) + gop + frames)
# relay_control: [piece-1][len u32][protobuf]...
def varint(n):
    r = b''
    while True:
        b = n & 0x7f; n >>= 7
        if n: r += bytes([b | 0x80])
        else: return r + bytes([b])
def field(num, wt, payload):
    key = varint(num << 3 | wt)
    return key + (varint(payload) if wt == 0 else varint(len(payload)) + payload)
def msg(num, body): return field(num, 2, body)
def framed(m): return struct.pack('>I', len(m)) + m
ctl = [
    msg(1, field(1, 0, 1) + field(2, 2, b'origin-1')),
    msg(2, field(1, 0, 3) + field(2, 2, b'live') + field(3, 2, b'cam') + field(4, 0, 12) + field(5, 2, b'00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01')),
    msg(3, field(1, 0, 3)),
    msg(4, field(1, 0, 3) + field(2, 0, 2) + field(3, 2, b'o2') + field(4, 0, 9)),
    msg(5, field(1, 0, 3)),
    msg(6, field(1, 0, 4) + field(2, 2, b'live') + field(3, 2, b'cam') + field(4, 0, 12) + field(5, 0, 1)),
    msg(7, field(1, 0, 4)), msg(8, field(1, 0, 4) + field(2, 0, 3) + field(3, 2, b'o3')),
    msg(9, field(1, 0, 4) + field(2, 0, 10) + field(3, 0, 1)),
]
write('relay_control', 'all', bytes([4]) + b''.join(framed(m) for m in ctl))
for i, m in enumerate(ctl):
    write('relay_control', f'm{i}', bytes([255]) + framed(m))
# hls_stamp: [mode][68 bytes]
st = bytes([1]) + struct.pack('>QQBIIQBQQQBQ', 17, 3, 1, 9, 99, 90000 * 3600, 1, 1790000000000, 4, 45000, 1, 48000 * 3600)
assert len(st) == 68
write('hls_stamp', 'full', bytes([0]) + st)
write('hls_stamp', 'built', bytes([1]) + st)
# cluster_values: [sel][key len][key][value]
def cv(sel, key, value): return bytes([sel, len(key)]) + key + value
write('cluster_values', 'node', cv(0, b'/sluice/nodes/origin/o-1', b'{"addresses":{"rtmp":"10.0.0.5:1935","relay":"10.0.0.5:4433"},"capacity":{"max_streams":100,"max_connections":1000},"state":"ready"}'))
write('cluster_values', 'edge', cv(1, b'/a/nodes/edge/e.2', b'{"state":"draining","extra":[1,2,{"x":null}]}'))
write('cluster_values', 'stream', cv(2, b'/x/y/streams/live/cam.1', b'{"origin":"o-1","codecs":["h264","aac"],"started_at_ms":1790000000000}'))
# ts_reader: [mode][...]; mode 1: a segment name
write('ts_reader', 'name', bytes([1]) + b'ts-12345.ts')
write('ts_reader', 'adts', bytes([3, 0x11, 0x90]))
