namespace Machi.Ngsi.Errors;

/// <summary>The error types of ETSI GS CIM 009 clause 5.5.2, each with its HTTP status.</summary>
public enum NgsiErrorType
{
    InvalidRequest,
    BadRequestData,
    AlreadyExists,
    OperationNotSupported,
    ResourceNotFound,
    InternalError,
    TooComplexQuery,
    TooManyResults,
    LdContextNotAvailable,
    NoMultiTenantSupport,
    NonexistentTenant,
    NotAcceptable,
    UnsupportedMediaType,
    PayloadTooLarge,
    Conflict,
    Unauthorized,
    Forbidden,
    GatewayTimeout,
}

/// <summary>
/// A failure the API reports to its caller as a ProblemDetails body. Everything the broker rejects on purpose
/// is one of these; anything else reaching the error handler is a bug and is logged as one.
/// </summary>
public sealed class NgsiException : Exception
{
    public NgsiException(NgsiErrorType type, string detail, string? title = null)
        : base(detail)
    {
        Type = type;
        Title = title ?? DefaultTitle(type);
    }

    public NgsiException() : this(NgsiErrorType.InternalError, "Internal error") { }

    public NgsiException(string message) : this(NgsiErrorType.BadRequestData, message) { }

    public NgsiException(string message, Exception innerException) : base(message, innerException)
    {
        Type = NgsiErrorType.BadRequestData;
        Title = DefaultTitle(Type);
    }

    public NgsiErrorType Type { get; }

    public string Title { get; }

    public string Detail => Message;

    public int Status => StatusOf(Type);

    public string TypeUri => TypeUriOf(Type);

    public static NgsiException BadData(string detail) => new(NgsiErrorType.BadRequestData, detail);

    public static NgsiException Invalid(string detail) => new(NgsiErrorType.InvalidRequest, detail);

    public static NgsiException NotFound(string detail) => new(NgsiErrorType.ResourceNotFound, detail);

    public static int StatusOf(NgsiErrorType type) => type switch
    {
        NgsiErrorType.InvalidRequest => 400,
        NgsiErrorType.BadRequestData => 400,
        NgsiErrorType.TooComplexQuery => 403,
        NgsiErrorType.TooManyResults => 403,
        NgsiErrorType.AlreadyExists => 409,
        NgsiErrorType.Conflict => 409,
        NgsiErrorType.OperationNotSupported => 422,
        NgsiErrorType.ResourceNotFound => 404,
        NgsiErrorType.NonexistentTenant => 404,
        NgsiErrorType.LdContextNotAvailable => 503,
        NgsiErrorType.NoMultiTenantSupport => 501,
        NgsiErrorType.NotAcceptable => 406,
        NgsiErrorType.UnsupportedMediaType => 415,
        NgsiErrorType.PayloadTooLarge => 413,
        NgsiErrorType.Unauthorized => 401,
        NgsiErrorType.Forbidden => 403,
        NgsiErrorType.GatewayTimeout => 504,
        _ => 500,
    };

    /// <summary>Clause 5.5.2 names the error types under https://uri.etsi.org/ngsi-ld/errors/.</summary>
    public static string TypeUriOf(NgsiErrorType type) => "https://uri.etsi.org/ngsi-ld/errors/" + type;

    private static string DefaultTitle(NgsiErrorType type) => type switch
    {
        NgsiErrorType.InvalidRequest => "Invalid request",
        NgsiErrorType.BadRequestData => "Bad request data",
        NgsiErrorType.AlreadyExists => "Already exists",
        NgsiErrorType.OperationNotSupported => "Operation not supported",
        NgsiErrorType.ResourceNotFound => "Resource not found",
        NgsiErrorType.TooComplexQuery => "Too complex query",
        NgsiErrorType.TooManyResults => "Too many results",
        NgsiErrorType.LdContextNotAvailable => "JSON-LD @context not available",
        NgsiErrorType.NoMultiTenantSupport => "No multi-tenant support",
        NgsiErrorType.NonexistentTenant => "Nonexistent tenant",
        NgsiErrorType.NotAcceptable => "Not acceptable",
        NgsiErrorType.UnsupportedMediaType => "Unsupported media type",
        NgsiErrorType.PayloadTooLarge => "Payload too large",
        NgsiErrorType.Conflict => "Conflict",
        NgsiErrorType.Unauthorized => "Unauthorized",
        NgsiErrorType.Forbidden => "Forbidden",
        NgsiErrorType.GatewayTimeout => "Gateway timeout",
        _ => "Internal error",
    };
}
