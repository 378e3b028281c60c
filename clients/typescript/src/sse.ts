/**
 * A Server-Sent Events parser (the `text/event-stream` format): text in, whole messages out. It
 * does no I/O, so a message split anywhere across network chunks parses the same as one that
 * arrived whole.
 */

import { ChainlogError } from './errors.js';

/** One dispatched message. */
export interface SseMessage {
  /** The `id:` field, when the message had one. */
  id?: string;
  /** The `event:` field; `message` when absent, as the format says. */
  event: string;
  /** The `data:` lines, joined with newlines. */
  data: string;
}

/**
 * The longest line kept while waiting for its end. A stored event is at most 64 KiB by default
 * (1 MiB at most), so a longer line means the peer is not chainlogd, and buffering it would let
 * it take the client's memory.
 */
export const MAX_LINE_CHARS = 4 << 20;

export class SseParser {
  private pending = '';
  private data: string[] = [];
  private event = '';
  private id: string | undefined;

  /** Takes the next piece of decoded text and returns the messages it completed. */
  push(text: string): SseMessage[] {
    this.pending += text;
    const out: SseMessage[] = [];
    for (;;) {
      const end = /\r\n|\r|\n/.exec(this.pending);
      if (end === null) break;
      // A CR that ends the text may be the first half of a CRLF: wait for the next piece.
      if (end[0] === '\r' && end.index === this.pending.length - 1) break;
      const line = this.pending.slice(0, end.index);
      this.pending = this.pending.slice(end.index + end[0].length);
      const message = this.line(line);
      if (message !== undefined) out.push(message);
    }
    if (this.pending.length > MAX_LINE_CHARS) {
      throw new ChainlogError({
        status: 0,
        code: 'bad_response',
        message: `an event-stream line longer than ${MAX_LINE_CHARS} characters`,
      });
    }
    return out;
  }

  /** One line: a field, a comment, or the blank line that dispatches the message. */
  private line(line: string): SseMessage | undefined {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) return undefined; // a comment: the server's keep-alive
    const colon = line.indexOf(':');
    const name = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (name) {
      case 'data':
        this.data.push(value);
        break;
      case 'event':
        this.event = value;
        break;
      case 'id':
        this.id = value;
        break;
      default:
        break; // `retry` and unknown fields: this client sets its own reconnect delay
    }
    return undefined;
  }

  private dispatch(): SseMessage | undefined {
    const message: SseMessage = { event: this.event || 'message', data: this.data.join('\n') };
    if (this.id !== undefined) message.id = this.id;
    const had = this.data.length > 0;
    this.data = [];
    this.event = '';
    this.id = undefined;
    // The format drops a message with no data line (only an id or an event name).
    return had ? message : undefined;
  }
}
