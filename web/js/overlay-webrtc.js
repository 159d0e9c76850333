// WebRTC viewer in the overlay (/preview?webrtc_room= and the webrtc element): filled in by the signaling feature.
export {};
