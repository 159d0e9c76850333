// TTS in the overlay: filled in by the TTS feature (uses on() from overlay.js).
export {};
