// What a long wait shows: on a terminal, an ora spinner with the message and
// the time waited; in a pipe, each new message once, as a plain line, so logs
// say why a command waits without filling up.
import ora, { type Ora } from "ora";

/** Options of {@link StatusLine}. */
export interface StatusLineOptions {
  /**
   * Draw a live line rather than plain lines. @default a terminal that has a
   * width (under `script` without a size, columns is 0 and a spinner would
   * draw garbage)
   */
  live?: boolean;
}

type StatusStream = NodeJS.WritableStream & { isTTY?: boolean; columns?: number };

/** Whether `stream` is a terminal a spinner can draw on. */
export function canDrawOn(stream: StatusStream): boolean {
  return stream.isTTY === true && (stream.columns ?? 0) > 0;
}

export class StatusLine {
  private readonly live: boolean;
  private text: string | undefined;
  private lastPrinted: string | undefined;
  private spinner: Ora | undefined;
  private ticker: NodeJS.Timeout | undefined;
  private readonly startedAt = Date.now();

  constructor(
    private readonly stream: StatusStream,
    options: StatusLineOptions = {},
  ) {
    this.live = options.live ?? canDrawOn(stream);
  }

  /** Shows `text`: on a terminal as the spinner's text (with the seconds waited), in a pipe printed once per new text. */
  update(text: string): void {
    if (!this.live) {
      if (text !== this.lastPrinted) this.stream.write(`${text}\n`);
      this.lastPrinted = text;
      return;
    }
    this.text = text;
    // discardStdin off: ora would otherwise take over stdin and Ctrl-C.
    this.spinner ??= ora({ stream: this.stream, isEnabled: true, discardStdin: false });
    this.render();
    if (!this.spinner.isSpinning) this.spinner.start();
    if (!this.ticker) {
      this.ticker = setInterval(() => this.render(), 1000);
      this.ticker.unref();
    }
  }

  /** Erases the spinner's line and stops it; output that follows starts on a clean line. */
  stop(): void {
    clearInterval(this.ticker);
    this.ticker = undefined;
    this.spinner?.stop();
    this.spinner = undefined;
  }

  private render(): void {
    if (!this.spinner || this.text === undefined) return;
    this.spinner.text = `${this.text} (${Math.floor((Date.now() - this.startedAt) / 1000)}s)`;
  }
}
