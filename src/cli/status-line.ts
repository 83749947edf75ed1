// What a long wait shows: on a terminal, one line rewritten in place with a
// spinner and the time waited; in a pipe, each new message once, as a plain
// line, so logs say why a command waits without filling up.

const FRAMES = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
const FRAME_MS = 120;

/** Options of {@link StatusLine}. */
export interface StatusLineOptions {
  /** Draw a live line (a terminal) rather than plain lines. @default stream.isTTY */
  live?: boolean;
  /** In plain mode, write nothing at all. @default false */
  quietInPipes?: boolean;
}

export class StatusLine {
  private readonly live: boolean;
  private readonly quiet: boolean;
  private text: string | undefined;
  private lastPrinted: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private frame = 0;
  private readonly startedAt = Date.now();
  private drawn = false;

  constructor(
    private readonly stream: NodeJS.WritableStream & { isTTY?: boolean; columns?: number },
    options: StatusLineOptions = {},
  ) {
    this.live = options.live ?? stream.isTTY === true;
    this.quiet = options.quietInPipes ?? false;
  }

  /** Shows `text`: redrawn in place on a terminal, printed once per new text in a pipe. */
  update(text: string): void {
    this.text = text;
    if (!this.live) {
      if (!this.quiet && text !== this.lastPrinted) this.stream.write(`${text}\n`);
      this.lastPrinted = text;
      return;
    }
    this.draw();
    if (!this.timer) {
      this.timer = setInterval(() => this.draw(), FRAME_MS);
      this.timer.unref();
    }
  }

  /** Erases the line (on a terminal) and stops redrawing; output that follows starts on a clean line. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    if (this.live && this.drawn) this.stream.write("\r\x1b[K");
    this.drawn = false;
  }

  private draw(): void {
    if (this.text === undefined) return;
    const seconds = Math.floor((Date.now() - this.startedAt) / 1000);
    const spinner = FRAMES[this.frame++ % FRAMES.length] ?? "";
    let line = `${spinner} ${this.text} (${seconds}s)`;
    // A line wider than the terminal would wrap, and \r would redraw only its last row.
    const width = this.stream.columns && this.stream.columns > 1 ? this.stream.columns - 1 : 0;
    if (width > 0 && line.length > width) line = `${line.slice(0, Math.max(0, width - 1))}…`;
    this.stream.write(`\r\x1b[K${line}`);
    this.drawn = true;
  }
}
