// Consensus Playground's classroom dashboard: plain JavaScript, no framework, nothing from the internet.
// Everything arrives through one EventSource (server-sent events); text goes in with textContent only,
// so a member's name can never become markup. Read-only: this page sends nothing but GETs.
"use strict";

(function () {
  const base = location.pathname.replace(/\/+$/, "");
  const $ = (id) => document.getElementById(id);
  const NEWS_KEPT = 8;
  let chartHeight = null;
  let closed = false;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function fmt(n) {
    return Number(n).toLocaleString("en-US");
  }

  function ago(unix) {
    const s = Math.max(0, Math.round(Date.now() / 1000 - unix));
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    return Math.floor(s / 3600) + " h ago";
  }

  function setConnection(text, ok) {
    const node = $("connection");
    node.textContent = text;
    node.classList.toggle("ok", !!ok);
  }

  function renderBlocks(blocks) {
    const list = $("blocks");
    const known = new Set(Array.from(list.children).map((li) => li.dataset.hash));
    list.replaceChildren();
    for (const b of blocks) {
      const li = el("li", "block");
      li.id = "block-" + b.height;
      li.dataset.height = b.height;
      li.dataset.hash = b.hash;
      if (known.size && !known.has(b.hash)) li.classList.add("new");
      li.append(el("span", "height", "#" + b.height), el("code", "hash", b.hash + "…"),
        el("span", "miner", b.pos ? "proposed by " + b.miner : (b.height === 0 ? "genesis" : "mined by " + b.miner)),
        el("span", "meta", fmt(b.transfers) + " transfer" + (b.transfers === 1 ? "" : "s") + " · " + ago(b.time)));
      list.append(li);
    }
  }

  function renderRace(race) {
    const section = $("race-section");
    section.hidden = race === null;
    if (race === null) return;
    const list = $("race");
    list.replaceChildren();
    $("race-empty").hidden = race.miners.length > 0;
    $("race-empty").textContent = "Nobody is mining block " + race.height + ".";
    for (const m of race.miners) {
      const li = el("li", "miner");
      const bar = el("progress");
      bar.max = 100;
      bar.value = Math.min(100, m.percent);
      li.append(el("span", "name", m.name), bar,
        el("span", "meta", m.percent + "% of a block's average work · " + fmt(m.hashes) + " hashes · " +
          m.share + "% of the power"));
      list.append(li);
    }
    section.querySelector("h2").textContent = "Mining race for block " + race.height;
  }

  function renderMempool(mempool) {
    $("mempool-count").textContent = fmt(mempool.count) + " waiting";
    const list = $("mempool");
    list.replaceChildren();
    for (const t of mempool.recent) {
      list.append(el("li", "transfer", t.from + " → " + t.to + ": " + fmt(t.amount) + " pts (fee " + fmt(t.fee) + ")"));
    }
  }

  function renderStaking(staking) {
    const section = $("staking-section");
    section.hidden = staking === null;
    if (staking === null) return;
    $("votes").value = Math.min(100, staking.votes_percent);
    $("votes-label").textContent = "Epoch " + staking.epoch + ": " + staking.votes_percent + "% of the stake voted" +
      (staking.justifies ? " — two thirds: it justifies" : " (two thirds justify)");
    $("checkpoints").textContent = "Justified: epoch " + staking.justified_epoch + " · Finalized: epoch " +
      staking.finalized_epoch + (staking.in_leak ? " · inactivity leak" : "");
    const list = $("validators");
    list.replaceChildren();
    for (const v of staking.validators) {
      const li = el("li", "validator " + v.status + (v.voted ? " voted" : ""));
      li.append(el("span", "vote", v.voted ? "✔" : "·"), el("span", "name", v.name),
        el("span", "meta", fmt(v.stake_points) + " pts · " + v.status + (v.slashed ? " · slashed" : "")));
      list.append(li);
    }
    if (staking.validators_total > staking.validators.length) {
      list.append(el("li", "muted", "… and " + (staking.validators_total - staking.validators.length) + " more"));
    }
  }

  function renderCharts(charts, height) {
    if (height === chartHeight) return;
    chartHeight = height;
    for (const chart of charts) {
      const img = document.querySelector('img[data-kind="' + CSS.escape(chart.kind) + '"]');
      if (!img) continue;
      img.alt = chart.alt;
      img.src = base + "/chart/" + encodeURIComponent(chart.kind) + ".png?height=" + height;
    }
  }

  function renderLive(live) {
    if (live.race !== undefined) renderRace(live.race);
    if (live.mempool) renderMempool(live.mempool);
    if (live.staking !== undefined) renderStaking(live.staking);
  }

  function renderState(state) {
    $("server").textContent = state.server || "Consensus Playground";
    const message = $("message");
    if (state.chain === null) {
      message.hidden = false;
      message.textContent = state.message;
      $("summary").textContent = "";
      return;
    }
    message.hidden = true;
    const c = state.chain;
    $("summary").textContent = c.mode.toUpperCase() + (c.merged ? " (merged)" : "") + " · height " + fmt(c.height) +
      " · tip " + c.tip + "… · a block every " + c.block_time_s + " s";
    renderBlocks(state.blocks);
    renderLive(state);
    renderCharts(state.charts, c.height);
  }

  function addNews(news) {
    const list = $("news");
    const li = el("li", "news-item " + news.kind);
    li.append(el("strong", null, news.title), el("span", "text", news.text));
    list.prepend(li);
    while (list.children.length > NEWS_KEPT) list.lastElementChild.remove();
  }

  function stop(text) {
    closed = true;
    setConnection(text, false);
    const message = $("message");
    message.hidden = false;
    message.textContent = text;
  }

  const source = new EventSource(base + "/events");
  source.addEventListener("open", () => setConnection("live", true));
  source.addEventListener("state", (e) => renderState(JSON.parse(e.data)));
  source.addEventListener("live", (e) => renderLive(JSON.parse(e.data)));
  source.addEventListener("news", (e) => addNews(JSON.parse(e.data)));
  source.addEventListener("bye", (e) => {
    const reason = JSON.parse(e.data).reason;
    if (reason === "expired" || reason === "revoked") {
      source.close();
      stop("This link has " + reason.replace("revoked", "been revoked") + ": ask an admin for a new one.");
    } else {
      setConnection("reconnecting…", false);
    }
  });
  source.addEventListener("error", () => {
    if (closed) return;
    if (source.readyState === EventSource.CLOSED) {
      stop("The dashboard closed the connection (the link may have expired or been revoked). Reload to try again.");
    } else {
      setConnection("reconnecting…", false);
    }
  });
})();
