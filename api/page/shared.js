/*
 * What both pages share (included into each page's script by api/page/route.ts): the status pill, the
 * event counter, the "changed" flash, and graphql-transport-ws spoken by hand
 * (https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md): connection_init → connection_ack,
 * subscribe → next…, answering ping with pong, reconnecting with backoff. Expects #status and #events.
 */
const statusEl = document.getElementById('status');
const eventsEl = document.getElementById('events');
let eventCount = 0;

function setStatus(state, text) {
  statusEl.dataset.state = state;
  statusEl.textContent = text;
}

function countEvent() {
  eventCount += 1;
  eventsEl.textContent = `${eventCount} event${eventCount === 1 ? '' : 's'}`;
}

function flash(el) {
  el.classList.remove('changed');
  void el.offsetWidth; // restart the CSS animation
  el.classList.add('changed');
}

/**
 * Connects to /graphql and keeps reconnecting (1, 2, 4, 8, 16 s; the first events after a reconnect resync
 * what the page subscribes again, or resume after its last event with `after`). `handlers.ack(subscribe)`
 * runs on every connection_ack: `subscribe(id, query, variables)` starts an operation.
 * `handlers.next(id, data, extensions)` gets each result's data and extensions (`asOf`);
 * `handlers.complete(id)` returns true when the completion was expected; `handlers.closed()` runs when the
 * socket closes.
 */
function connectLive(token, handlers) {
  let retry = 0;
  function connect() {
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql`;
    const ws = new WebSocket(url, 'graphql-transport-ws');
    const send = (message) => ws.send(JSON.stringify(message));
    const subscribe = (id, query, variables) =>
      send({ id, type: 'subscribe', payload: { query, variables } });
    ws.onopen = () => {
      setStatus('connecting', 'handshake…');
      send({ type: 'connection_init', payload: token ? { authorization: `Bearer ${token}` } : {} });
    };
    ws.onmessage = (event) => {
      const msg = JSON.parse(event.data);
      switch (msg.type) {
        case 'connection_ack':
          retry = 0;
          handlers.ack(subscribe);
          break;
        case 'next':
          if (msg.payload.errors) setStatus('closed', msg.payload.errors.map((e) => e.message).join('; '));
          if (msg.payload.data) handlers.next(msg.id, msg.payload.data, msg.payload.extensions);
          break;
        case 'error':
          setStatus('closed', msg.payload.map((e) => e.message).join('; '));
          break;
        case 'ping':
          send({ type: 'pong' });
          break;
        case 'complete':
          if (!handlers.complete?.(msg.id)) setStatus('closed', 'subscription completed by the server');
          break;
      }
    };
    ws.onclose = (event) => {
      handlers.closed?.();
      setStatus(
        'closed',
        `disconnected (${event.code}${event.reason ? ` ${event.reason}` : ''}), reconnecting…`,
      );
      retry = Math.min(retry + 1, 5);
      setTimeout(connect, 1000 * 2 ** (retry - 1));
    };
  }
  connect();
}
