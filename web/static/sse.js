// sse.js - reads a server-sent event stream from fetch() (EventSource cannot POST or
// send an Authorization header) and folds OpenAI chat-completion chunks into one reply.
//
// SSEParser follows the WHATWG event-stream rules that matter here: lines end in CRLF,
// LF or CR (also split across reads), ':' lines are comments (chatd's pings), 'data'
// lines of one event are joined with '\n', a blank line dispatches the event.
// readSSE decodes bytes with a streaming TextDecoder, so a UTF-8 character split between
// two network reads arrives whole.

export class SSEParser {
    /** onEvent({event, data, id}) runs once per dispatched event. */
    constructor(onEvent) {
        this.onEvent = onEvent;
        this.buf = '';
        this.data = [];
        this.event = '';
        this.id = '';
        this.skipLF = false; // the last chunk ended in CR: a leading LF belongs to it
    }

    feed(text) {
        let s = text;
        if (this.skipLF && s.startsWith('\n')) s = s.slice(1);
        this.skipLF = false;
        this.buf += s;
        let start = 0;
        for (let i = 0; i < this.buf.length; i++) {
            const c = this.buf[i];
            if (c !== '\n' && c !== '\r') continue;
            this.line(this.buf.slice(start, i));
            if (c === '\r') {
                if (i + 1 === this.buf.length) this.skipLF = true;
                else if (this.buf[i + 1] === '\n') i++;
            }
            start = i + 1;
        }
        this.buf = this.buf.slice(start);
    }

    /** Ends the stream: a last line without its newline is processed; an event that was
     * never ended by a blank line is dropped, as the standard says. */
    end() {
        if (this.buf) this.line(this.buf);
        this.buf = '';
        this.data = [];
        this.event = '';
    }

    line(l) {
        if (l === '') {
            if (this.data.length) this.onEvent({ event: this.event || 'message', data: this.data.join('\n'), id: this.id });
            this.data = [];
            this.event = '';
            return;
        }
        if (l[0] === ':') return;
        const colon = l.indexOf(':');
        const field = colon === -1 ? l : l.slice(0, colon);
        let value = colon === -1 ? '' : l.slice(colon + 1);
        if (value[0] === ' ') value = value.slice(1);
        if (field === 'data') this.data.push(value);
        else if (field === 'event') this.event = value;
        else if (field === 'id' && !value.includes('\0')) this.id = value;
    }
}

/** Yields the events of a byte stream (a fetch Response body). */
export async function* readSSE(body) {
    const reader = body.getReader();
    const decoder = new TextDecoder('utf-8');
    const queue = [];
    const parser = new SSEParser((e) => queue.push(e));
    try {
        for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            parser.feed(decoder.decode(value, { stream: true }));
            while (queue.length) yield queue.shift();
        }
        parser.feed(decoder.decode());
        parser.end();
        while (queue.length) yield queue.shift();
    } finally {
        reader.releaseLock();
    }
}

/** Yields each JSON chunk of an OpenAI-style stream until 'data: [DONE]'. A data line
 * that is not JSON throws. */
export async function* readChatChunks(body) {
    for await (const e of readSSE(body)) {
        if (e.data === '[DONE]') return;
        yield JSON.parse(e.data);
    }
}

/** A fresh reply state for applyChunk. */
export function newReply() {
    return { content: '', reasoning: '', finish: null, context: null, usage: null, error: null, model: null, id: null };
}

/** Folds one chat.completion.chunk (or an error object) into reply; returns reply. */
export function applyChunk(reply, chunk) {
    if (!chunk || typeof chunk !== 'object') return reply;
    if (chunk.error) {
        reply.error = chunk.error;
        return reply;
    }
    if (chunk.id) reply.id = chunk.id;
    if (chunk.model) reply.model = chunk.model;
    const choice = Array.isArray(chunk.choices) ? chunk.choices[0] : null;
    if (choice) {
        const d = choice.delta || {};
        if (typeof d.reasoning_content === 'string') reply.reasoning += d.reasoning_content;
        if (typeof d.content === 'string') reply.content += d.content;
        if (choice.finish_reason) reply.finish = choice.finish_reason;
    }
    if (chunk.context) reply.context = chunk.context;
    if (chunk.usage) reply.usage = chunk.usage;
    return reply;
}
