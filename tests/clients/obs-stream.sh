#!/bin/bash
# obs-stream.sh URL FILE -- headless OBS Studio (29, Debian 12) streams FILE (looped) to URL over
# RTMP: Xvfb, Mesa's software OpenGL, a generated profile (custom RTMP service, x264, AAC) and
# scene collection (one Media Source), `obs --startstreaming`. Used by the interop tests
# (tests/tests/interop: obs_publishes).
#   URL  = rtmp://host:port/app/streamkey   (server = up to last '/', key = last segment)
#   FILE = any media file ffmpeg can read
# Env: OBS_W/OBS_H (640x360), OBS_FPS (30), OBS_VBITRATE (1000), OBS_ABITRATE (128),
#      OBS_KEEP=1 keep the temp config dir, OBS_USER=nobody run OBS non-root,
#      OBS_LOG=where to copy OBS's own log at the end, OBS_TMP=where the temp dir goes (TMPDIR).
# Stop with SIGTERM/SIGINT to this script: it closes OBS's window (OBS ends the stream and exits
# cleanly) within ~1 s, then SIGTERM/SIGKILL after 3 s. Exits 1 when the stream stops for good
# (OBS does not retry a failed first connect).
set -euo pipefail
URL=${1:?usage: run-obs.sh URL FILE}; FILE=$(readlink -f "${2:?usage: run-obs.sh URL FILE}")
[ -r "$FILE" ] || { echo "cannot read $FILE" >&2; exit 2; }
SERVER=${URL%/*}; KEY=${URL##*/}
W=${OBS_W:-640}; H=${OBS_H:-360}; FPS=${OBS_FPS:-30}
VB=${OBS_VBITRATE:-1000}; AB=${OBS_ABITRATE:-128}
PROF=headless; COLL=headless; SCENE=Main

T=$(mktemp -d "${OBS_TMP:-${TMPDIR:-/tmp}}/sluice-obs.XXXXXX")
export HOME=$T/home XDG_CONFIG_HOME=$T/home/.config XDG_RUNTIME_DIR=$T/xdg
C=$XDG_CONFIG_HOME/obs-studio
mkdir -p "$C/basic/profiles/$PROF" "$C/basic/scenes" "$C/plugin_config" "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"

# ---- global.ini: skip first-run wizard, no confirmations, no updates ----
cat > "$C/global.ini" <<EOF
[General]
Pre19Defaults=false
Pre21Defaults=false
Pre23Defaults=false
Pre24.1Defaults=false
FirstRun=true
LastVersion=486539266
EnableAutoUpdates=false
ConfirmOnExit=false
[Basic]
Profile=$PROF
ProfileDir=$PROF
SceneCollection=$COLL
SceneCollectionFile=$COLL
ConfigOnNewProfile=false
[BasicWindow]
WarnBeforeStartingStream=false
WarnBeforeStoppingStream=false
WarnBeforeStoppingRecord=false
SysTrayEnabled=true
SysTrayWhenStarted=true
SysTrayMinimizeToTray=true
ShowTransitions=false
[Video]
Renderer=OpenGL
EOF

# ---- profile ----
cat > "$C/basic/profiles/$PROF/basic.ini" <<EOF
[General]
Name=$PROF
[Video]
BaseCX=$W
BaseCY=$H
OutputCX=$W
OutputCY=$H
FPSType=1
FPSInt=$FPS
ScaleType=bilinear
ColorFormat=NV12
ColorSpace=709
ColorRange=Partial
[Audio]
SampleRate=48000
ChannelSetup=Stereo
[Output]
Mode=Advanced
[AdvOut]
Encoder=obs_x264
ApplyServiceSettings=true
Rescale=false
TrackIndex=1
Track1Bitrate=$AB
RecType=Standard
RecEncoder=none
[Stream1]
IgnoreRecommended=true
EOF
cat > "$C/basic/profiles/$PROF/streamEncoder.json" <<EOF
{"rate_control":"CBR","bitrate":$VB,"keyint_sec":2,"preset":"veryfast","profile":"main","tune":"","x264opts":""}
EOF
python3 - "$C/basic/profiles/$PROF/service.json" "$SERVER" "$KEY" <<'EOF'
import json,sys
json.dump({"type":"rtmp_custom","settings":{"server":sys.argv[2],"key":sys.argv[3],"use_auth":False,"bwtest":False}},open(sys.argv[1],"w"),indent=1)
EOF

# ---- scene collection: one scene with a looping Media Source ----
python3 - "$C/basic/scenes/$COLL.json" "$COLL" "$SCENE" "$FILE" "$W" "$H" <<'EOF'
import json,sys
out,coll,scene,f,w,h=sys.argv[1:7]
media={"id":"ffmpeg_source","versioned_id":"ffmpeg_source","name":"Media","enabled":True,"volume":1.0,
  "muted":False,"mixers":255,"monitoring_type":0,"sync":0,"flags":0,
  "settings":{"is_local_file":True,"local_file":f,"looping":True,"restart_on_activate":True,
              "close_when_inactive":False,"hw_decode":False,"clear_on_media_end":False}}
item={"name":"Media","id":1,"visible":True,"locked":False,"rot":0.0,
  "pos":{"x":0.0,"y":0.0},"scale":{"x":1.0,"y":1.0},"align":5,"bounds_type":2,"bounds_align":0,
  "bounds":{"x":float(w),"y":float(h)},"crop_left":0,"crop_top":0,"crop_right":0,"crop_bottom":0}
sc={"id":"scene","versioned_id":"scene","name":scene,"enabled":True,"mixers":0,
  "settings":{"id_counter":1,"custom_size":False,"items":[item]}}
json.dump({"name":coll,"current_scene":scene,"current_program_scene":scene,
  "scene_order":[{"name":scene}],"sources":[sc,media],"groups":[],"transitions":[],
  "current_transition":"Cut","transition_duration":300,"preview_locked":False,
  "quick_transitions":[],"saved_projectors":[],"modules":{}},open(out,"w"),indent=1)
EOF

# ---- run as non-root if requested ----
RUNAS=()
if [ -n "${OBS_USER:-}" ]; then
  chown -R "$OBS_USER" "$T"
  RUNAS=(setpriv --reuid="$OBS_USER" --regid="$(id -gn "$OBS_USER" 2>/dev/null || echo nogroup)" --clear-groups)
fi

# ---- Xvfb ----
exec 3>"$T/display"
Xvfb -displayfd 3 -screen 0 1280x720x24 -nolisten tcp -noreset >"$T/xvfb.log" 2>&1 &
XPID=$!
for _ in $(seq 50); do [ -s "$T/display" ] && break; sleep 0.1; done
exec 3>&-
export DISPLAY=:$(head -1 "$T/display")
[ "$DISPLAY" != ":" ] || { echo "Xvfb failed:"; cat "$T/xvfb.log"; exit 1; } >&2
[ -n "${OBS_USER:-}" ] && chmod -R a+rX /tmp/.X11-unix 2>/dev/null || true

export LIBGL_ALWAYS_SOFTWARE=1 GALLIUM_DRIVER=llvmpipe QT_QPA_PLATFORM=xcb
# graceful close = WM_DELETE_WINDOW to OBS's top-level windows (like clicking [x]); stdlib ctypes + libX11
cat > "$T/xclose.py" <<'PYEOF'
import ctypes as C, ctypes.util, sys
X = C.CDLL(ctypes.util.find_library("X11")); vp, ul = C.c_void_p, C.c_ulong
X.XOpenDisplay.restype = vp; X.XOpenDisplay.argtypes = [C.c_char_p]
X.XDefaultRootWindow.restype = ul; X.XDefaultRootWindow.argtypes = [vp]
X.XInternAtom.restype = ul; X.XInternAtom.argtypes = [vp, C.c_char_p, C.c_int]
X.XQueryTree.argtypes = [vp, ul, C.POINTER(ul), C.POINTER(ul), C.POINTER(C.POINTER(ul)), C.POINTER(C.c_uint)]
X.XFetchName.argtypes = [vp, ul, C.POINTER(C.c_char_p)]; X.XFlush.argtypes = [vp]
class CM(C.Structure):
    _fields_ = [("type", C.c_int), ("serial", ul), ("send_event", C.c_int), ("display", vp),
                ("window", ul), ("message_type", ul), ("format", C.c_int), ("data", C.c_long * 5)]
class EV(C.Union): _fields_ = [("xclient", CM), ("pad", C.c_long * 24)]
X.XSendEvent.argtypes = [vp, ul, C.c_int, C.c_long, C.POINTER(EV)]
d = X.XOpenDisplay(None) or sys.exit(1)
r, p, ch, n = ul(), ul(), C.POINTER(ul)(), C.c_uint()
X.XQueryTree(d, X.XDefaultRootWindow(d), C.byref(r), C.byref(p), C.byref(ch), C.byref(n))
proto, delw = X.XInternAtom(d, b"WM_PROTOCOLS", 0), X.XInternAtom(d, b"WM_DELETE_WINDOW", 0)
for pre in sys.argv[1:]:
    for i in range(n.value):
        nm = C.c_char_p()
        if X.XFetchName(d, ch[i], C.byref(nm)) and nm.value and nm.value.decode("utf-8", "replace").startswith(pre):
            e = EV(); e.xclient.type = 33; e.xclient.window = ch[i]; e.xclient.message_type = proto
            e.xclient.format = 32; e.xclient.data[0] = delw
            X.XSendEvent(d, ch[i], 0, 0, C.byref(e))
X.XFlush(d)
PYEOF
OPID=; RC=0
obslog() { ls -t "$C"/logs/*.txt 2>/dev/null | head -1 || true; }
cleanup() {
  trap - TERM INT EXIT
  if [ -n "$OPID" ] && kill -0 "$OPID" 2>/dev/null; then
    # 1) graceful: close modal dialogs, then main window -> OBS stops stream and shuts down
    python3 "$T/xclose.py" "Failed to connect" "Disconnected" || true; sleep 0.3
    python3 "$T/xclose.py" "OBS " || true
    for _ in $(seq 30); do kill -0 "$OPID" 2>/dev/null || break; sleep 0.1; done
    # 2) fallback: SIGTERM (OBS 29 dies immediately, no shutdown sequence), then SIGKILL
    kill -TERM "$OPID" 2>/dev/null && sleep 1; kill -KILL "$OPID" 2>/dev/null || true
  fi
  kill "$XPID" 2>/dev/null || true; wait "$XPID" 2>/dev/null || true
  L=$(obslog); [ -n "$L" ] && [ -n "${OBS_LOG:-}" ] && cp "$L" "$OBS_LOG"
  [ "${OBS_KEEP:-0}" = 1 ] || rm -rf "$T"
  exit $RC
}
trap cleanup EXIT
trap 'RC=143; exit' TERM
trap 'RC=130; exit' INT

cd "$T"
"${RUNAS[@]}" obs --startstreaming --profile "$PROF" --collection "$COLL" --scene "$SCENE" \
    --minimize-to-tray --multi --disable-missing-files-check &
OPID=$!
# watchdog: exit non-zero if OBS dies or the stream stops for good (initial connect failure,
# reconnect retries exhausted) -- OBS would otherwise sit idle with a modal dialog.
while kill -0 "$OPID" 2>/dev/null; do
  L=$(obslog)
  if [ -n "$L" ] && grep -q '==== Streaming Stop' "$L"; then
    echo "run-obs: stream stopped: $(grep -E 'failed|Disconnected' "$L" | tail -1)" >&2; RC=1; exit
  fi
  sleep 1 & wait $!
done
wait "$OPID" || RC=$?
echo "run-obs: obs exited rc=$RC" >&2; [ "$RC" != 0 ] || RC=1
