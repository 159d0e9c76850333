// Applying a `scene.patch` frame: the engine sends only the elements a version changed, against a base version.
//   applyScenePatch(scene, message)  the scene at message.version, or null when `scene` is not at its base version
//                                    (then the caller falls back to a full scene: reconnect or fetch).

/**
 * @param {object} scene   a scene as `scene.full` carries it ({name, width, height, elements, _version, updated_at})
 * @param {object} message a `scene.patch` frame ({version, base_version, patch: {name, width, height, updated_at,
 *                         upsert, remove, order?}})
 * @returns {object|null}
 */
export function applyScenePatch(scene, message) {
  const patch = message && message.patch;
  if (!scene || !patch || !Array.isArray(scene.elements)) return null;
  if (scene.name !== patch.name || scene._version !== message.base_version) return null;
  const upsert = Array.isArray(patch.upsert) ? patch.upsert : [];
  const removed = new Set(Array.isArray(patch.remove) ? patch.remove : []);
  const upserted = new Map(upsert.map((element) => [element.id, element]));
  const kept = scene.elements.filter((element) => !removed.has(element.id));
  let elements;
  if (Array.isArray(patch.order)) {
    const byId = new Map(kept.map((element) => [element.id, element]));
    for (const [id, element] of upserted) byId.set(id, element);
    elements = patch.order.map((id) => byId.get(id));
    if (elements.some((element) => element === undefined)) return null;
  } else {
    const known = new Set(kept.map((element) => element.id));
    elements = kept.map((element) => upserted.get(element.id) || element);
    for (const element of upsert) if (!known.has(element.id)) elements.push(element);
  }
  return {
    ...scene,
    elements,
    width: patch.width,
    height: patch.height,
    updated_at: patch.updated_at,
    _version: message.version,
  };
}
