// Plugins: what each plugin registered (routes, sockets, events, element types, web entry points), as shown by
// `overlay-engine plugins` and `GET /api/plugins`.

@_spi(Engine) import PluginAPI

/// One entry of the table, for `overlay-engine plugins` and `GET /api/plugins`.
public struct RouteDescription: Codable, Sendable, Equatable {
    public let method: String
    public let path: String
    public let access: String
    public let summary: String
}

/// What a plugin registered, as shown to people.
public struct PluginDescription: Codable, Sendable {
    public let name: String
    public let version: String
    public let summary: String
    /// The library's path on the server; listed to the streamer only.
    public var file: String?
    public let apiVersion: String
    public let routes: [RouteDescription]
    public let websockets: [RouteDescription]
    public let events: [String]
    public let elementTypes: [ElementTypeDescription]
    /// Its web entry points, or nil when it has no web folder.
    public let web: WebDescription?

    enum CodingKeys: String, CodingKey {
        case name, version, summary, file, routes, websockets, events, web
        case apiVersion = "api_version"
        case elementTypes = "element_types"
    }

    /// An element type with the JSON Schema of its `props` (nil: free-form).
    public struct ElementTypeDescription: Codable, Sendable, Equatable {
        public let type: String
        public let label: String
        public let width: Double
        public let height: Double
        public let schema: JSONValue?

        init(_ type: ElementType) {
            self.type = type.name
            label = type.label
            width = type.width
            height = type.height
            schema = type.jsonSchema
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(type, forKey: .type)
            try container.encode(label, forKey: .label)
            try container.encode(width, forKey: .width)
            try container.encode(height, forKey: .height)
            try container.encode(schema ?? .null, forKey: .schema)
        }
    }

    /// The URLs of a plugin's web folder and entry points, for the pages' loaders.
    public struct WebDescription: Codable, Sendable, Equatable {
        public struct Entry: Codable, Sendable, Equatable {
            public let module: String
            public let styles: [String]
        }
        public let base: String
        public let overlay: Entry?
        public let panel: Entry?
        public let admin: Entry?
        public let pages: [String]

        init(plugin name: String, registrar: PluginRegistrar) {
            base = "/plugins/\(name)/"
            let base = self.base
            func entry(_ page: WebPageKind) -> Entry? {
                registrar.webModules.first { $0.page == page }.map {
                    Entry(module: base + $0.module, styles: $0.styles.map { base + $0 })
                }
            }
            overlay = entry(.overlay)
            panel = entry(.panel)
            admin = entry(.admin)
            pages = registrar.webPages.map(\.path)
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(base, forKey: .base)
            // Explicit nulls: a page's loader reads every key.
            if let overlay { try container.encode(overlay, forKey: .overlay) } else { try container.encodeNil(forKey: .overlay) }
            if let panel { try container.encode(panel, forKey: .panel) } else { try container.encodeNil(forKey: .panel) }
            if let admin { try container.encode(admin, forKey: .admin) } else { try container.encodeNil(forKey: .admin) }
            try container.encode(pages, forKey: .pages)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(version, forKey: .version)
        try container.encode(summary, forKey: .summary)
        try container.encodeIfPresent(file, forKey: .file)
        try container.encode(apiVersion, forKey: .apiVersion)
        try container.encode(routes, forKey: .routes)
        try container.encode(websockets, forKey: .websockets)
        try container.encode(events, forKey: .events)
        try container.encode(elementTypes, forKey: .elementTypes)
        if let web { try container.encode(web, forKey: .web) } else { try container.encodeNil(forKey: .web) }
    }

    init(_ plugin: LoadedPlugin) {
        name = plugin.name
        version = plugin.version
        summary = plugin.summary
        file = plugin.file
        apiVersion = plugin.apiVersion.description
        routes = plugin.registrar.routes.map {
            RouteDescription(method: $0.method.rawValue, path: $0.path, access: $0.access.rawValue, summary: $0.summary)
        }
        websockets = plugin.registrar.webSocketEndpoints.map {
            RouteDescription(method: "WS", path: $0.path, access: $0.access.rawValue, summary: "")
        }
        events = plugin.registrar.eventHandlers.map { "\($0.event) (\($0.channels.map(\.rawValue).joined(separator: ",")))" }
        elementTypes = plugin.registrar.elementTypes.map(ElementTypeDescription.init)
        web = plugin.webDirectory == nil ? nil : WebDescription(plugin: plugin.name, registrar: plugin.registrar)
    }
}
