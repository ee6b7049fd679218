// The live view: one tile per stream, its video over WebRTC (one POST per viewer, the
// WHEP shape), its state and figures from /api/streams twice a second. No build step, no
// CDN: this file is served by streamer itself.
"use strict";

const tiles = new Map();  // stream id -> {el, pc, session, retry}
let token = sessionStorage.getItem("streamer-token") || "";
let settings = null;

function takeTokenFromHash() {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) {
    token = decodeURIComponent(m[1]);
    sessionStorage.setItem("streamer-token", token);
    history.replaceState(null, "", location.pathname);  // not left in the address bar
  }
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (token) headers["Authorization"] = "Bearer " + token;
  const response = await fetch(path, Object.assign({}, options, {headers}));
  if (response.status === 401) {
    document.getElementById("login").hidden = false;
    throw new Error("a token is needed");
  }
  return response;
}

function mediaUrl(sid, what) {
  const q = token ? "?token=" + encodeURIComponent(token) : "";
  return `/api/streams/${encodeURIComponent(sid)}/${what}${q}`;
}

function makeTile(sid) {
  const el = document.getElementById("tile").content.firstElementChild.cloneNode(true);
  el.dataset.stream = sid;
  el.querySelector(".name").textContent = sid;
  el.querySelector(".snapshot").href = mediaUrl(sid, "snapshot.jpg");
  el.querySelector(".mjpeg").href = mediaUrl(sid, "mjpeg");
  document.getElementById("tiles").appendChild(el);
  const tile = {el, pc: null, session: null, retry: null};
  tiles.set(sid, tile);
  connect(sid, tile);
  return tile;
}

function waitForCandidates(pc) {
  // aiortc takes no trickled candidates: the offer carries them all (or what 2 s gathered).
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise(resolve => {
    const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, 2000);
  });
}

async function connect(sid, tile) {
  clearTimeout(tile.retry);
  const pc = new RTCPeerConnection({iceServers: settings ? settings.ice_servers : []});
  tile.pc = pc;
  pc.addTransceiver("video", {direction: "recvonly"});
  pc.ontrack = event => {
    const video = tile.el.querySelector("video");
    video.srcObject = event.streams[0] || new MediaStream([event.track]);
    video.play().catch(() => {});
  };
  pc.onconnectionstatechange = () => {
    if (["failed", "closed"].includes(pc.connectionState) && tile.pc === pc) reconnect(sid, tile);
  };
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await waitForCandidates(pc);
    const response = await api(`/api/streams/${encodeURIComponent(sid)}/webrtc`, {
      method: "POST", headers: {"Content-Type": "application/sdp"}, body: pc.localDescription.sdp,
    });
    if (!response.ok) throw new Error((await response.json()).error || response.statusText);
    tile.session = response.headers.get("Location");
    await pc.setRemoteDescription({type: "answer", sdp: await response.text()});
  } catch (error) {
    tile.el.querySelector(".reason").textContent = "view: " + error.message;
    reconnect(sid, tile);
  }
}

function hangUp(tile, keepalive = false) {
  if (tile.session) api(tile.session, {method: "DELETE", keepalive}).catch(() => {});
  if (tile.pc) tile.pc.close();
  tile.pc = null;
  tile.session = null;
}

function reconnect(sid, tile) {
  hangUp(tile);
  clearTimeout(tile.retry);
  tile.retry = setTimeout(() => { if (tiles.get(sid) === tile) connect(sid, tile); }, 2000);
}

function show(tile, s) {
  const el = tile.el;
  el.dataset.state = s.state;
  el.querySelector(".badge").textContent = s.state;
  el.querySelector(".state").textContent = s.state;
  el.querySelector(".fps").textContent = s.fps.toFixed(1) + " frames/s";
  el.querySelector(".latency").textContent =
    s.latency_p50 == null ? "" : "latency " + Math.round(s.latency_p50 * 1000) + " ms";
  el.querySelector(".reason").textContent = s.state === "up" ? "" : (s.last_error || "");
  const list = el.querySelector(".counts");
  list.replaceChildren(...Object.entries(s.counts || {}).map(([name, counts]) => {
    const li = document.createElement("li");
    li.dataset.name = name;
    li.textContent = name + ": " + Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(", ");
    return li;
  }));
}

async function refresh() {
  try {
    if (!settings) settings = await (await api("/api/view")).json();
    const streams = (await (await api("/api/streams")).json()).streams;
    const seen = new Set();
    for (const s of streams) {
      seen.add(s.id);
      show(tiles.get(s.id) || makeTile(s.id), s);
    }
    for (const [sid, tile] of tiles) {
      if (!seen.has(sid)) { hangUp(tile); tile.el.remove(); tiles.delete(sid); }
    }
    document.getElementById("status").textContent = `${streams.length} stream(s)`;
  } catch (error) {
    document.getElementById("status").textContent = error.message;
  }
}

document.getElementById("login").addEventListener("submit", event => {
  event.preventDefault();
  token = document.getElementById("token").value;
  sessionStorage.setItem("streamer-token", token);
  document.getElementById("login").hidden = true;
  settings = null;
  for (const [sid, tile] of tiles) { hangUp(tile); tile.el.remove(); tiles.delete(sid); }
  refresh();
});
window.addEventListener("pagehide", () => { for (const tile of tiles.values()) hangUp(tile, true); });

takeTokenFromHash();
refresh();
setInterval(refresh, 500);  // a camera that goes down shows so within half a second
