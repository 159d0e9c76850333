// What the plugins' unit tests share.

import PluginAPI

/// A `config:` mapping of scalar values, each on its own line from line 2 (as a YAML section would be), for
/// decoding a plugin's configuration without YAML.
public func configNode(_ pairs: [(String, String)]) -> ConfigNode {
    ConfigNode(
        .mapping(
            pairs.enumerated().map {
                (key: $0.element.0, value: ConfigNode(.scalar($0.element.1, quoted: false), line: $0.offset + 2, column: 5))
            }),
        line: 1, column: 1)
}
