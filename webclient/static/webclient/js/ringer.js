// The ring of an incoming call (and the ring-back a caller hears), made with Web Audio so the
// client ships no sound files. Browsers may refuse to play before the user has clicked on the
// page; then it stays silent and the incoming-call panel still shows.

const PATTERNS = {
  incoming: { tones: [440, 480], on: 1.2, off: 1.8, gain: 0.12 },
  ringback: { tones: [440, 480], on: 1.0, off: 3.0, gain: 0.05 },
};

export class Ringer {
  constructor() {
    this.context = null;
    this.timer = null;
    this.kind = null;
  }

  get ringing() {
    return this.kind !== null;
  }

  start(kind = "incoming") {
    if (this.kind === kind) return;
    this.stop();
    this.kind = kind;
    try {
      this.context ??= new AudioContext();
      this.context.resume().catch(() => {});
    } catch {
      return; // no audio: the panel is enough
    }
    const pattern = PATTERNS[kind];
    const ring = () => {
      const now = this.context.currentTime;
      const gain = this.context.createGain();
      gain.gain.setValueAtTime(0, now);
      gain.gain.linearRampToValueAtTime(pattern.gain, now + 0.05);
      gain.gain.setValueAtTime(pattern.gain, now + pattern.on - 0.05);
      gain.gain.linearRampToValueAtTime(0, now + pattern.on);
      gain.connect(this.context.destination);
      for (const frequency of pattern.tones) {
        const osc = this.context.createOscillator();
        osc.frequency.value = frequency;
        osc.connect(gain);
        osc.start(now);
        osc.stop(now + pattern.on);
      }
    };
    ring();
    this.timer = setInterval(ring, (pattern.on + pattern.off) * 1000);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    this.kind = null;
  }
}
