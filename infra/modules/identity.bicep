// The app's user-assigned managed identity: one principal for storage, Azure ML, Key Vault and telemetry,
// so every role the app holds is granted (and reviewed) in one place (roles.bicep, ml-wiring.bicep).
param name string
param location string
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
