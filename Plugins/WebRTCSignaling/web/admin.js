// The webrtc-signaling plugin's dashboard module (docs/plugin-bundles.md): the Camera card with every room,
// its metrics, and a button that copies a publisher link (/publish with a fresh token).

import { CameraPanel, cameraCaps, cameraHost } from "./camera.js";

/**
 * Adds the Camera card when the engine serves the room list.
 * @param {object} api  the dashboard's plugin api
 */
export default function setup(api) {
  if (!cameraCaps(api).camera) return;
  api.addCard({
    id: "camera",
    title: "Camera",
    span: 12,
    render(container) {
      container.classList.add("camera");
      new CameraPanel(cameraHost(api, { streamer: true, isVisible: () => !document.hidden && api.active() }), container).init();
    },
  });
}
